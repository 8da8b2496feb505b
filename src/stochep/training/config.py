"""Run configuration: one flat, plain-data record (nanoGPT style), loadable from YAML.

It is the one place for defaults. It imports no part: the parts (neuron, cost, dynamics, learning
rules, frames) check their own fields through checks registered in ``registry.CONFIG_CHECKS``,
which :meth:`Config.validate` runs after checking the loop's and the data's fields, and
``training.build`` builds the objects of a run from it. Every failure is a ``ValueError`` naming
the field and its allowed range. ``--set key=value`` overrides
are parsed as YAML and type-checked; numbers in scientific notation (``1e-3``, which YAML 1.1
reads as a string) are accepted wherever a float is expected.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from stochep.plugins import load_plugins
from stochep.registry import CONFIG_CHECKS, RULES
from stochep.validation import (
    check_choice,
    check_int_at_least,
    check_positive,
    check_unit_interval,
    suggest,
)


class ConfigError(ValueError):
    """A user-supplied configuration value is unknown or invalid."""


@dataclass
class Config:
    # data
    dataset: str = "digits"
    data_dir: str | None = None
    data_options: dict = field(default_factory=dict)  # the loader's own settings (e.g. n_frames)
    # random crop after zero padding by augment_pad pixels (+ horizontal flip), for images
    augment: bool = False
    augment_pad: int = 4
    augment_flip: bool = True
    # held out of the training set (seeded) to choose checkpoint_best; 0: no validation, the
    # best checkpoint is the last epoch (data/split.py)
    val_fraction: float = 0.1
    train_subset: int = 0  # train on the first N training samples (0: all), before the split
    # score only the first N validation and test samples each epoch (0: all): a quick look
    # during a short run; `stochep eval` scores a checkpoint on the whole test set
    eval_subset: int = 0
    # when to score the test set: "every" epoch, or only at a new best validation accuracy and
    # at the last epoch ("best": test_acc is null on the other epochs; nothing is chosen by it)
    eval_test: str = "every"
    # evaluation reads the prediction from the output state averaged over the free phase's last
    # k steps (1: its final state, as the paper); a lower-noise readout of a spiking net
    readout_average: int = 1
    # evaluate an exponential moving average of the weights with this decay per optimizer step
    # (0: off, the raw weights); training continues from the raw weights (weight_average.py)
    ema_decay: float = 0.0
    # architecture: ints are dense hidden widths (conv layers are dicts, see docs/usage.md)
    layers: list = field(default_factory=lambda: [256])
    n_perclass: int = 10
    init_scale: float = 0.5  # multiplies PyTorch's default init (GUIDE 1.3)
    # neuron model (neurons.py) and dynamics (eq. 1, 2, 7, 21); kappa, spikes and dt are the
    # hard-sigmoid neuron's, neuron_options go to another model's constructor
    neuron: str = "hard-sigmoid"
    neuron_options: dict = field(default_factory=dict)
    kappa: float = 2.0
    spikes: str = "bernoulli"
    dt: float = 1.0
    lam: float = 0.5
    # learning rule (rules/): ep (eq. 9/14/22), bptt (surrogate-gradient BPTT, same
    # network), fa, id (implicit differentiation) or any registered rule. ``rules`` maps a
    # rule's name to its section: its own options (``LearningRule.options``) and the config
    # fields it overrides when it trains; a rule with no section trains with its ``tuned`` one
    algo: str = "ep"
    rules: dict = field(default_factory=dict)
    # EP (eq. 8, 9, 22). The defaults are the deep-net recipe (docs/recipe.md): state cost,
    # calibrated rates, three-phase with shared noise and averaged contrasts, AdamW + cosine.
    T_free: int = 30
    T_nudge: int = 10
    beta: float = 0.3
    estimator: str = "three-phase"
    average_last: int = 10  # EP contrast from the mean state of each phase's last k steps
    shared_noise: bool = True  # three-phase: the -beta phase replays the +beta spikes
    # frame sequences (event data, frames.py): warm start xi^{tau+1,0} = gamma xi^{tau,*} (eq. 18)
    # and one optimizer step per batch ("sample") or per frame ("frame")
    gamma: float = 0.3
    frame_update: str = "sample"
    T_free_warm: int = 0  # free-phase steps of the frames after the first (0: T_free)
    # persistent free phases (persistent.py): each training sample's free phase starts from its
    # free equilibrium of the previous epoch, with T_free_persist steps (0: T_free)
    persist_free: bool = False
    T_free_persist: int = 0
    cost: str = "state"  # output cost (costs.py): "state" (paper, eq. 8) or "rate"
    calibrate_rate: float = 0.15  # >0: shift biases so free-phase rates start here (calibrate.py)
    calibrate_batch: int = 256  # training images used by that calibration
    calibrate_iters: int = 60  # bias updates of the calibration (each one free phase)
    # speed options (docs/speed.md): update order, early exit, torch.compile, bf16 dynamics
    update: str = "sync"
    tol: float = 0.0
    # "batch": a phase ends when the whole batch has settled (tol); "sample": each sample stops
    # on its own once settled and the later steps run on the unsettled samples only
    stop: str = "batch"
    # the free phase's initial states: "zeros" (the paper) or "sweep", a bottom-up mean-field
    # pass that sets each layer from the layer below (engine/start.py)
    start: str = "zeros"
    compile: bool = False
    graphs: bool = False  # compile the step as a CUDA graph (one launch a step on a GPU)
    pool_every: int = 1  # refresh max-pooling indices every k steps (1 = exact)
    dynamics_dtype: str = "float32"
    device: str = "cpu"  # "cuda" on a GPU machine
    # bit-identical reruns on a GPU: torch.use_deterministic_algorithms + cuDNN/cuBLAS settings
    # (process-wide, set when a Trainer is built; slower; docs/gpu.md). The CPU is always exact
    deterministic: bool = False
    # optimisation (appendix E)
    optimizer: str = "adamw"
    lr: float = 0.001
    lr_layers: list = field(default_factory=list)  # per-interaction lr factors, bottom to top
    momentum: float = 0.0
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    batch_size: int = 32
    epochs: int = 20
    seed: int = 0
    preset: str | None = None
    paper: dict = field(default_factory=dict)  # a preset's record of the paper's own values
    # the device (docs/hardware.md): weights, updates and states on N-bit grids
    # (training/quantize.py: weights, updates, states, rounding, headroom) and device faults
    # present while training and evaluating (engine/faults.py: dead, stuck, drop, variation,
    # layers, seed); empty: full precision, a perfect device
    quantize: dict = field(default_factory=dict)
    faults: dict = field(default_factory=dict)
    # modules imported before this config is read: parts registered outside the package
    # (stochep/plugins.py; ``stochep --plugin``), so a resumed or evaluated run finds them
    plugins: list = field(default_factory=list)

    def __init__(self, **kw: Any):
        """``Config(epochs=3, beta=0.2)``: each value is checked as ``--set`` checks it (an
        unknown key names the closest one, a wrong type or a value out of range is one
        :class:`ConfigError` line) and the whole config is validated, so a bad config never
        waits for the Trainer to fail."""
        for f in fields(Config):
            setattr(self, f.name, f.default if f.default_factory is dataclasses.MISSING
                    else f.default_factory())
        plugins = kw.get("plugins")
        if plugins is not None and (not isinstance(plugins, list)
                                    or not all(isinstance(p, str) for p in plugins)):
            raise ConfigError(f"plugins must be a list of module names, got {plugins!r}")
        load_plugins(plugins)
        kw = upgrade_keys(kw)  # keys of earlier versions, as from_dict and --set take them
        unknown = sorted(set(kw) - _FIELD_NAMES)
        if unknown:
            raise ConfigError("unknown config key(s): " + ", ".join(
                _with_suggestion(k) for k in unknown))
        for k, v in kw.items():
            self.set(k, v)
        if "dataset" in kw:
            check_dataset(self.dataset)
        if kw:
            try:
                self.validate()
            except ConfigError:
                raise
            except ValueError as e:
                raise ConfigError(str(e)) from None

    def validate(self) -> Config:
        check_unit_interval("lam", self.lam)
        check_int_at_least("N_perclass", self.n_perclass, 1)
        check_int_at_least("batch_size", self.batch_size, 1)
        check_int_at_least("train_subset", self.train_subset, 0)
        check_int_at_least("eval_subset", self.eval_subset, 0)
        check_int_at_least("epochs", self.epochs, 1)
        check_int_at_least("seed", self.seed, 0)
        check_positive("lr", self.lr)
        if not isinstance(self.lr_layers, list):
            raise ValueError(f"lr_layers must be a list of factors, got {self.lr_layers!r}")
        for i, f in enumerate(self.lr_layers):
            check_positive(f"lr_layers[{i}]", f)
        check_positive("init_scale", self.init_scale)
        if not isinstance(self.calibrate_rate, float) or not 0 <= self.calibrate_rate < 1:
            raise ValueError(f"calibrate_rate must be in [0, 1) (0 = off), "
                             f"got {self.calibrate_rate!r}")
        check_int_at_least("calibrate_batch", self.calibrate_batch, 1)
        check_int_at_least("augment_pad", self.augment_pad, 0)
        if not isinstance(self.augment, bool) or not isinstance(self.augment_flip, bool):
            raise ValueError(f"augment and augment_flip must be true or false, "
                             f"got {self.augment!r}, {self.augment_flip!r}")
        check_int_at_least("calibrate_iters", self.calibrate_iters, 1)
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"deterministic must be true or false, got {self.deterministic!r}")
        check_choice("optimizer", self.optimizer, ("sgd", "adamw"))
        check_int_at_least("T_free_persist", self.T_free_persist, 0)
        if not isinstance(self.persist_free, bool):
            raise ValueError(f"persist_free must be true or false, got {self.persist_free!r}")
        check_choice("scheduler", self.scheduler, ("none", "cosine"))
        check_choice("eval_test", self.eval_test, ("every", "best"))
        check_int_at_least("readout_average", self.readout_average, 1)
        if not isinstance(self.ema_decay, float) or not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = off), got {self.ema_decay!r}")
        if self.weight_decay < 0 or self.momentum < 0:
            raise ValueError("weight_decay and momentum must be >= 0")
        if not isinstance(self.layers, list):
            raise ValueError(f"layers must be a list, got {self.layers!r}")
        if not all(isinstance(p, str) and p for p in self.plugins):
            raise ValueError(f"plugins must be a list of module names, got {self.plugins!r}")
        if not isinstance(self.val_fraction, (int, float)) or not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        # every other field belongs to a part, which checks its own section (registered in
        # CONFIG_CHECKS where the part is defined: neuron, cost, dynamics, frames, rules)
        for name in CONFIG_CHECKS:
            CONFIG_CHECKS[name](self)
        return self

    # ---- the objects of a run -----------------------------------------------------------
    def load_data(self, data_dir: str | None = None, **kw):
        """The dataset ``dataset`` names, from ``data_dir`` (default: the config's), with the
        loader settings ``data_options`` (and ``kw``)."""
        from stochep.data import load_dataset
        if not isinstance(self.data_options, dict):
            raise ValueError(f"data_options must be a mapping, got {self.data_options!r}")
        return load_dataset(self.dataset, data_dir or self.data_dir, **self.data_options, **kw)

    def resolved(self) -> Config:
        """The config actually trained: the active rule's section applied. Its config fields
        override this config's; the resolved config keeps only the section's options, so
        resolving it again (on resume, from the checkpoint's config) changes nothing."""
        rule = RULES[self.algo]
        overrides = rule.config_overrides(self)
        if not overrides:
            return self
        cfg = Config.from_dict(self.to_dict())
        cfg.rules = {**self.rules, self.algo: {k: v for k, v in rule.section(self).items()
                                               if k in rule.options}}
        for k, v in overrides.items():
            cfg.set(k, v)
        return cfg.validate()

    def sections(self) -> dict[str, dict[str, Any]]:
        """This config by owner (:data:`SECTIONS`)."""
        return to_sections(self.to_dict())

    def diff(self) -> dict[str, Any]:
        """The fields that differ from the defaults."""
        base = type(self)().to_dict()
        return {k: v for k, v in self.to_dict().items() if base[k] != v}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """The config of a mapping of its keys; keys of earlier versions are translated
        (:func:`upgrade_keys`), so old YAML files and checkpoints load."""
        if is_sectioned(d):
            d = from_sections(d)
        load_plugins(d.get("plugins"))  # before the keys that name their parts
        d = upgrade_keys(d)
        unknown = sorted(map(str, set(d) - _FIELD_NAMES))
        if unknown:
            raise ConfigError("unknown config key(s): " + ", ".join(
                _with_suggestion(k) for k in unknown))
        cfg = cls()
        for k, v in d.items():
            cfg.set(k, v)
        return cfg

    def set(self, key: str, value: Any) -> None:
        """Set one field, checking that the value has the field's type. A dotted key sets one
        entry of a mapping field (``rules.bptt.clip``, ``data_options.n_train``)."""
        if "." in key:
            self._set_entry(key, value)
            return
        if _is_legacy(key):
            self.rules = upgrade_keys({key: value, "algo": self.algo, "rules": self.rules})["rules"]
            return
        if key not in _FIELD_NAMES:
            raise ConfigError(f"unknown config key {_with_suggestion(key)}")
        default = getattr(type(self)(), key)
        if default is not None and value is not None:
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if isinstance(default, float) and isinstance(value, str):
                value = _float_or_str(value)
            if type(value) is not type(default):
                raise ConfigError(f"{key} must be of type {type(default).__name__}, "
                                  f"got {value!r} ({type(value).__name__})")
        setattr(self, key, value)

    def _set_entry(self, key: str, value: Any) -> None:
        head, *path = key.split(".")
        if head not in _FIELD_NAMES or not isinstance(getattr(type(self)(), head), dict):
            raise ConfigError(f"unknown config key {key!r}: only mapping fields "
                              f"({', '.join(sorted(_MAPPINGS))}) take a dotted key")
        root = copy.deepcopy(getattr(self, head))
        if head == "rules" and len(path) == 2 and path[0] not in root:
            # the first entry of a rule's section starts from the section the rule trains with
            root[path[0]] = RULES[path[0]].section(self)  # (the registry's, no rule built)
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: {part!r} is not a mapping")
        node[path[-1]] = value
        setattr(self, head, root)

    def apply_overrides(self, pairs: list[str]) -> Config:
        for pair in pairs:
            if "=" not in pair:
                raise ConfigError(f"--set expects key=value, got {pair!r}")
            key, raw = pair.split("=", 1)
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError as e:
                raise ConfigError(f"--set {key.strip()}: {raw!r} is not a valid YAML value "
                                  f"({_yaml_problem(e)})") from None
            self.set(key.strip(), value)
        return self


_FIELD_NAMES = frozenset(f.name for f in fields(Config))

# The config by owner: the section each field belongs to, and its name there. config.yaml is
# written this way (:func:`to_sections`); a config in sections loads through the same upgrade as
# a flat one (:func:`from_sections`). ``name`` is the part a section names (the neuron model,
# the learning rule, the dataset); ``options`` its own settings.
SECTIONS: dict[str, dict[str, str]] = {
    "data": {"dataset": "name", "data_dir": "dir", "data_options": "options",
             "augment": "augment", "augment_pad": "augment_pad", "augment_flip": "augment_flip",
             "val_fraction": "val_fraction", "train_subset": "train_subset",
             "eval_subset": "eval_subset", "eval_test": "eval_test",
             "readout_average": "readout_average"},
    "network": {"layers": "layers", "n_perclass": "n_perclass", "init_scale": "init_scale",
                "cost": "cost", "calibrate_rate": "calibrate_rate",
                "calibrate_batch": "calibrate_batch", "calibrate_iters": "calibrate_iters"},
    "neuron": {"neuron": "name", "kappa": "kappa", "spikes": "spikes", "dt": "dt",
               "neuron_options": "options"},
    "dynamics": {"lam": "lam", "T_free": "T_free", "T_nudge": "T_nudge", "update": "update",
                 "tol": "tol", "stop": "stop", "start": "start", "compile": "compile",
                 "graphs": "graphs",
                 "pool_every": "pool_every",
                 "dynamics_dtype": "dtype", "gamma": "gamma", "frame_update": "frame_update",
                 "T_free_warm": "T_free_warm", "persist_free": "persist_free",
                 "T_free_persist": "T_free_persist"},
    "rule": {"algo": "name", "beta": "beta", "estimator": "estimator",
             "average_last": "average_last", "shared_noise": "shared_noise",
             "rules": "sections"},
    "optim": {"optimizer": "name", "lr": "lr", "lr_layers": "lr_layers",
              "momentum": "momentum", "weight_decay": "weight_decay", "scheduler": "scheduler",
              "ema_decay": "ema_decay", "batch_size": "batch_size", "epochs": "epochs"},
    "hardware": {"quantize": "quantize", "faults": "faults"},
    "run": {"seed": "seed", "device": "device", "deterministic": "deterministic",
            "plugins": "plugins", "preset": "preset", "paper": "paper"},
}
_OWNER = {f: (sec, key) for sec, keys in SECTIONS.items() for f, key in keys.items()}
assert set(_OWNER) == _FIELD_NAMES, sorted(_FIELD_NAMES ^ set(_OWNER))


def to_sections(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A flat config mapping by owner: ``{"data": {...}, "network": {...}, "neuron": {"name":
    ..., "kappa": ..., "options": {...}}, "dynamics": ..., "rule": {"name": "ep", "beta": ...,
    "sections": {...}}, "optim": ..., "run": ...}``."""
    return {sec: {key: flat[f] for f, key in keys.items() if f in flat}
            for sec, keys in SECTIONS.items()}


def is_sectioned(d: dict[str, Any]) -> bool:
    """Whether a config mapping is written by owner (its ``neuron`` or another section key maps
    to a mapping), not flat."""
    return any(isinstance(d.get(sec), dict) for sec in SECTIONS) and not (
        set(d) - set(SECTIONS))


def from_sections(d: dict[str, Any]) -> dict[str, Any]:
    """The flat mapping of a config written by owner; an unknown key names its section."""
    flat = {}
    for sec, body in d.items():
        if not isinstance(body, dict):
            raise ConfigError(f"config section {sec!r} must be a mapping, got {body!r}")
        names = {key: f for f, key in SECTIONS[sec].items()}
        for key, v in body.items():
            if key not in names:
                raise ConfigError(f"unknown key {sec}.{key}{suggest(key, names)}; section "
                                  f"{sec!r} holds {', '.join(names)}")
            flat[names[key]] = v
    return flat
_MAPPINGS = frozenset(f.name for f in fields(Config) if f.default_factory is dict)


def _legacy_keys() -> dict[str, tuple[str, str]]:
    """Top-level keys of earlier versions -> (rule, option), as the rules declare them."""
    return {old: (name, new) for name in RULES for old, new in RULES[name].legacy_keys.items()}


def _is_legacy(key: str) -> bool:
    return key == "rule_options" or key in _legacy_keys() or (
        key in RULES and RULES[key].legacy_section)


def upgrade_keys(d: dict[str, Any]) -> dict[str, Any]:
    """Translate the keys of earlier versions into today's ``rules:`` sections (one function for
    YAML files, ``--set`` and checkpoints):

    - a rule's old override section (``bptt: {...}``, :attr:`LearningRule.legacy_section`)
      becomes its section of ``rules``, its old option keys renamed;
    - old top-level option keys (``bptt_clip``, ``id_iters``...,
      :attr:`LearningRule.legacy_keys`) become options of their rule's section; a top-level
      value yields to the same option in the old section, as it did, and a rule with no old
      section gets the one it trained with then (:attr:`LearningRule.tuned`);
    - ``rule_options: {...}`` becomes the section of ``algo``'s rule.

    A config without any of these keys is returned unchanged."""
    if not any(_is_legacy(k) for k in d):
        return d
    legacy = _legacy_keys()
    sections = {name for name in RULES if RULES[name].legacy_section}
    d = dict(d)
    rules = copy.deepcopy(d.get("rules") or {})
    for name in sections & set(d):
        section = d.pop(name) or {}
        old = RULES[name].legacy_keys
        rules[name] = {old.get(k, k): v for k, v in section.items()}
    for key in sorted(set(d) & set(legacy)):
        name, option = legacy[key]
        rules.setdefault(name, dict(RULES[name].tuned)).setdefault(option, d.pop(key))
    options = d.pop("rule_options", None)
    if options:
        rules.setdefault(d.get("algo", "ep"), {}).update(options)
    d["rules"] = rules
    return d


def _with_suggestion(key: str, names=None) -> str:
    """``'bta'`` as ``'bta' (did you mean 'beta'?)`` when a config key is close enough."""
    return f"{key!r}" + suggest(key, names or _FIELD_NAMES)


def check_dataset(name: str) -> None:
    """One ConfigError line for a dataset no loader is registered for, with the closest name."""
    from stochep.data import DATASETS

    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {_with_suggestion(name, DATASETS.names())}; "
                          f"choose one of {', '.join(sorted(DATASETS))}, or build your own with "
                          "Dataset.from_tensors(...) or a registered DatasetSource")


def _float_or_str(text: str):
    """``"1e-3"`` (YAML 1.1 reads numbers without a dot in the mantissa as strings) as a float;
    any other string unchanged, so the type check names it."""
    try:
        return float(text)
    except ValueError:
        return text


def _yaml_problem(e: yaml.YAMLError) -> str:
    """One line naming what the YAML parser objected to."""
    return getattr(e, "problem", None) or str(e).splitlines()[0]


def check_device(device: str) -> None:
    """Raise ConfigError unless ``device`` (``cpu``, ``cuda``, ``cuda:N``) exists here."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type == "cpu":
        return
    if dev.type != "cuda":
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} is not available: this PyTorch sees no CUDA GPU; "
                          "use --set device=cpu")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r} is not available: only "
                          f"{torch.cuda.device_count()} CUDA device(s)")


def load_yaml(path: str) -> dict:
    try:
        with open(path) as f:
            d = yaml.safe_load(f) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not a UTF-8 text file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config {path} is not valid YAML{where}: {_yaml_problem(e)}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"config {path} must be a mapping of key: value")
    return d
