"""Argument checks that fail with one line naming the parameter and the allowed range."""
from __future__ import annotations

import difflib
import inspect
import math

import torch


def check_positive(name: str, value) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_int_at_least(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def check_unit_interval(name: str, value) -> None:
    """Open at 0, closed at 1: (0, 1]. A bool is not a number here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value <= 1):
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def check_nonzero(name: str, value) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value == 0:
        raise ValueError(f"{name} must be a finite nonzero number (|{name}| > 0), got {value!r}")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def check_input(x: torch.Tensor, shape: tuple[int, ...], name: str = "x") -> None:
    """A batch ``[B, *shape]`` of finite values."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{name} must be [N, {', '.join(map(str, shape))}], "
                         f"got {list(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError(f"{name} is empty")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values")


def check_labels(y: torch.Tensor, batch: int, n_classes: int, name: str = "y") -> None:
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != batch:
        raise ValueError(f"{name} must be a 1-D tensor of {batch} class indices, "
                         f"got {getattr(y, 'shape', type(y).__name__)}")
    if y.dtype.is_floating_point or y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"{name} must hold integer class indices in [0, {n_classes - 1}]")


def check_ep_noise_options(average_last, shared_noise, estimator: str, shortest_phase: int) -> None:
    """EP variance-reduction options: ``average_last >= 1`` (a phase shorter than it is averaged
    whole); shared noise with one nudged phase needs ``shortest_phase = T_free - T_nudge >= 1``
    (the free steps before the branch point)."""
    check_int_at_least("average_last", average_last, 1)
    if not isinstance(shared_noise, bool):
        raise ValueError(f"shared_noise must be true or false, got {shared_noise!r}")
    if shared_noise and estimator != "three-phase" and shortest_phase < 1:
        raise ValueError(f"shared_noise with estimator {estimator} branches the nudged phase off "
                         "the free phase T_nudge steps before its end: T_free must be longer "
                         "than T_nudge")


def suggest(key, names) -> str:
    """`` (did you mean 'x'?)`` for the name in ``names`` closest to ``key``, or ``""``."""
    close = difflib.get_close_matches(str(key), sorted(map(str, names)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_mapping_keys(name: str, spec, keys) -> None:
    """A config mapping ``name`` (``faults``, ``quantize``) whose keys must be among ``keys``:
    not a mapping, or an unknown key (with the closest name), is one ValueError."""
    if not isinstance(spec, dict):
        raise ValueError(f"{name} must be a mapping of {', '.join(keys)}, got {spec!r}")
    for k in spec:
        if k not in keys:
            raise ValueError(f"unknown key {name}.{k}{suggest(k, keys)}; {name} holds "
                             f"{', '.join(keys)}")


def check_options(what: str, options: dict, target) -> dict:
    """``options`` for the callable ``target`` (a part's class or loader): an unknown key is
    one ValueError naming the closest accepted one and all of them; a value of the wrong type
    for a parameter with a number, bool or str default is one too (an int is taken as a float).
    Returns the options, ints converted where floats are expected. ``what`` names them in
    messages (``neuron_options for neuron 'sigbern'``)."""
    params = {n: p for n, p in inspect.signature(target).parameters.items()
              if n not in ("self", "data_dir", "cls") and p.kind in
              (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    out = {}
    for key, value in options.items():
        if key not in params:
            raise ValueError(f"unknown option {key!r}{suggest(key, params)} in {what}; its "
                             f"options: {', '.join(params) or 'none'}")
        default = params[key].default
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(default, (bool, int, float, str)) and default is not None \
                and type(value) is not type(default):
            raise ValueError(f"{what}: {key} must be of type {type(default).__name__}, got "
                             f"{value!r} ({type(value).__name__})")
        out[key] = value
    return out
