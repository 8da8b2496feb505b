"""Learning rules: how a batch becomes ``p.grad``. The interface and registry are in
``base.py``; the built-in rules are EP (``ep.py``, eq. 9/14/22), surrogate-gradient BPTT
(``bptt.py``), feedback alignment (``fa.py``), implicit differentiation (``implicit.py``),
continual EP (``continual.py``), vector-field EP with feedback weights (``vf.py``), and
temporal EP over frame sequences (``frames.py``, appendix A). Importing this package registers
the built-ins."""
from stochep.rules.base import RULES, LearningRule, StepResult, TrainingDiverged
from stochep.rules.bptt import BPTT
from stochep.rules.continual import CEP
from stochep.rules.ep import EP, ep_gradients
from stochep.rules.fa import FA
from stochep.rules.frames import FrameSequence
from stochep.rules.implicit import ID
from stochep.rules.vf import VF

__all__ = ["BPTT", "CEP", "EP", "FA", "ID", "RULES", "FrameSequence", "LearningRule", "StepResult",
           "TrainingDiverged", "VF", "ep_gradients"]
