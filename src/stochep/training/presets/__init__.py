"""Table 3 presets: one YAML file per row in ``stochep/presets/``.

Each file holds every config value of its row. A ``paper:`` mapping keeps the paper's own numbers
(reported accuracy, and the paper's value of anything we had to change); deviations are commented
in the file.
"""
from __future__ import annotations

from importlib import resources

import yaml

from ..config import Config, ConfigError

COLUMNS = ("lam", "T_free", "T_nudge", "beta", "kappa", "n_perclass", "lr", "batch_size",
           "epochs", "estimator", "optimizer", "weight_decay", "spikes", "init_scale")


def _files():
    return {p.name[:-5]: p for p in resources.files("stochep.training.presets").iterdir()
            if p.name.endswith(".yaml")}


def preset_names() -> list[str]:
    return sorted(_files())


def load_preset(name: str) -> Config:
    """The preset's :class:`Config`; its ``paper`` field holds the paper's own values."""
    files = _files()
    if name not in files:
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(sorted(files))}")
    raw = yaml.safe_load(files[name].read_text())
    cfg = Config.from_dict(raw)
    cfg.preset = name
    return cfg


def presets_table() -> str:
    rows = [("preset", "dataset", "layers") + COLUMNS + ("paper_acc",)]
    for name in preset_names():
        cfg = load_preset(name)
        paper = cfg.paper
        layers = "-".join(str(x) if isinstance(x, int) else
                          f"a{x['attention']}" if "attention" in x else f"c{x.get('conv')}"
                          for x in cfg.layers)
        rows.append((name, cfg.dataset, layers) + tuple(str(getattr(cfg, c)) for c in COLUMNS)
                    + (str(paper.get("accuracy", "")),))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)
