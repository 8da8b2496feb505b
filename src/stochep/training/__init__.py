"""Training: the run config (``config.py``), the presets (``presets/``), the network a config
builds (``models.py``), optimizers and schedules (``optim.py``), the training loop
(``trainer.py``) with its checkpoints (``checkpoint.py``), weight average
(``weight_average.py``), N-bit weights and updates (``quantize.py``), data parallelism (``distributed.py``) and per-layer activity monitor
(``activity.py``)."""
from stochep.training.config import Config, ConfigError
from stochep.training.presets import load_preset
from stochep.training.trainer import Trainer

__all__ = ["Config", "ConfigError", "Trainer", "load_preset"]
