"""Checkpoint files: tensors and plain data only, written atomically, loaded without running code.

A checkpoint is written to a temporary file in the same folder, fsynced, renamed over the target,
and the folder is fsynced so the rename survives a power cut. It holds only tensors, dicts, lists
and scalars, so :func:`load_checkpoint` reads it with ``torch.load(weights_only=True)``: a file
that names any other Python object (a crafted pickle, or an old checkpoint) is refused before any
of its code can run. Checkpoints of earlier versions (``stochep-checkpoint-v1``) are converted by
the explicit :func:`convert_checkpoint` (``stochep convert-checkpoint OLD NEW --trust``).
"""
from __future__ import annotations

import os
import re
import tempfile
from collections import OrderedDict

import torch

from .config import Config

CKPT_FORMAT = "stochep-checkpoint-v2"
OLD_FORMATS = ("stochep-checkpoint-v1",)

# field -> allowed types of a v2 checkpoint (bool is never accepted where int is)
_FIELDS = {
    "config": (dict,), "epoch": (int,), "model": (dict,), "optimizer": (dict,),
    "scheduler": (dict,), "spike_rng": (dict,), "data_gen": (torch.Tensor,),
    "sign_gen": (torch.Tensor,), "train_time": (float, int), "history": (list,),
    "input_shape": (list,), "n_classes": (int,), "best_epoch": (int,),
    "best_val_acc": (float, type(None)), "test_acc_at_best_val": (float, type(None)),
}
_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.Size)


class CheckpointError(Exception):
    """A checkpoint is missing, truncated, unsafe, outdated or not a stochep checkpoint."""


def check_plain(obj, where: str = "checkpoint") -> None:
    """Raise ``TypeError`` unless ``obj`` is tensors, scalars, strings and dicts/lists of them."""
    if type(obj) in (dict, OrderedDict):
        for k, v in obj.items():
            check_plain(k, where)
            check_plain(v, f"{where}[{k!r}]")
    elif type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__name__}; a checkpoint "
                        "holds only tensors and plain data")


def fsync_dir(folder: str) -> None:
    """Make a rename inside ``folder`` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_atomic(obj: dict, path: str) -> None:
    """Write ``obj`` to a temporary file beside ``path``, fsync, rename over ``path``: a crash
    or a full disk leaves the previous file whole. A write that fails (no space, no
    permission) is one :class:`CheckpointError` line."""
    check_plain(obj)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pt")
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(folder)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, (OSError, RuntimeError)):
            raise CheckpointError(write_failure(path, e)) from None
        raise


def write_failure(path: str, e: BaseException) -> str:
    """One line for a failed write of ``path``: the OS's reason (a full disk, no permission),
    and that the file it was to replace is unchanged."""
    reason = e.strerror if isinstance(e, OSError) and e.strerror else \
        (str(e).strip().splitlines() or [type(e).__name__])[0]
    if "file write failed" in reason or "unexpected pos" in reason:  # torch.save's wording
        reason = "the write failed (is the disk full?)"
    kept = " (the previous one is kept)" if os.path.exists(path) else ""
    return f"cannot write {path}: {reason}{kept}"


def _convert_hint(path: str) -> str:
    return (f"if you trust the file, convert it with `stochep convert-checkpoint {path} NEW.pt "
            "--trust`")


def _read(path: str) -> object:
    """``torch.load(weights_only=True)``; every failure becomes one CheckpointError line."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- truncated zip, wrong format, unsafe objects
        msg = str(e)
        if msg.startswith("Weights only load failed"):
            found = re.search(r"GLOBAL ([\w.]+)", msg)
            what = found.group(1) if found else "objects other than tensors and plain data"
            raise CheckpointError(
                f"checkpoint {path} names {what}, which loading would run or build: refused "
                f"(stochep checkpoints hold only tensors and plain data); if it is an older "
                f"stochep checkpoint, {_convert_hint(path)}") from None
        first = msg.splitlines()[0] if msg else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint "
                              f"({first})") from None


def _is_type(value, types) -> bool:
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def validate_checkpoint(ck: object, path: str) -> dict:
    """Check the format marker and every field's type; returns ``ck``."""
    if not isinstance(ck, dict) or "format" not in ck:
        raise CheckpointError(f"checkpoint {path} is not a stochep checkpoint")
    fmt = ck["format"]
    if fmt in OLD_FORMATS:
        raise CheckpointError(f"checkpoint {path} has the old format {fmt} (loading it needs "
                              f"pickle, which can run code); {_convert_hint(path)}")
    if fmt != CKPT_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {fmt!r}; this stochep reads "
                              f"{CKPT_FORMAT}")
    for key, types in _FIELDS.items():
        if key not in ck:
            raise CheckpointError(f"checkpoint {path} has no {key!r} field")
        if not _is_type(ck[key], types):
            raise CheckpointError(f"checkpoint {path}: field {key!r} is a "
                                  f"{type(ck[key]).__name__}, expected "
                                  f"{' or '.join(t.__name__ for t in types)}")
    if not all(_is_type(d, (int,)) and d > 0 for d in ck["input_shape"]):
        raise CheckpointError(f"checkpoint {path}: input_shape must list positive integers")
    bad = [k for k, v in ck["model"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: model entry {bad[0]!r} is not a tensor")
    if not all(isinstance(ck["spike_rng"].get(k), torch.Tensor) for k in ("state", "generator")):
        raise CheckpointError(f"checkpoint {path}: spike_rng needs tensors 'state' and "
                              "'generator'")
    try:
        Config.from_dict(ck["config"]).validate()
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path}: invalid config ({e})") from None
    return ck


def load_checkpoint(path: str) -> dict:
    """A validated v2 checkpoint, loaded with ``weights_only=True`` (no code is run)."""
    return validate_checkpoint(_read(path), path)


def load_model_state(net: torch.nn.Module, state: dict) -> None:
    """``net.load_state_dict(state)``; a mismatch raises one CheckpointError line."""
    try:
        net.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint does not fit the network its config builds "
                              f"({first})") from None


def upgrade_v1(ck: dict) -> dict:
    """A v2 checkpoint from a v1 one. v1 chose its best epoch on the test set, which v2 never
    does, so no best-validation record carries over; the run trained on the whole training set,
    so its config gets ``val_fraction: 0.0`` and a resumed run continues on the same data."""
    new = {k: v for k, v in ck.items() if k != "best_acc"}
    new["format"] = CKPT_FORMAT
    new["config"] = {**ck["config"], "val_fraction": 0.0}
    new.update(best_epoch=0, best_val_acc=None, test_acc_at_best_val=None)
    return new


def convert_checkpoint(old: str, new: str, trust: bool = False) -> dict:
    """Convert an older checkpoint to the current format. Loading the old file unpickles it,
    which runs any code it names: only with ``trust=True``, for files you trust."""
    if not trust:
        raise CheckpointError(f"converting {old} unpickles it, which runs any code the file "
                              "names; pass --trust if you trust where it came from")
    if not os.path.isfile(old):
        raise CheckpointError(f"checkpoint {old} does not exist")
    try:
        ck = torch.load(old, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 -- whatever a damaged pickle raises
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"checkpoint {old} is damaged or not a checkpoint "
                              f"({first})") from None
    fmt = ck.get("format") if isinstance(ck, dict) else None
    if fmt == CKPT_FORMAT:
        raise CheckpointError(f"checkpoint {old} is already {CKPT_FORMAT}")
    if fmt not in OLD_FORMATS:
        raise CheckpointError(f"checkpoint {old} is not a stochep checkpoint")
    try:
        v2 = upgrade_v1(ck)
        check_plain(v2)
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"cannot convert {old}: {e}") from None
    validate_checkpoint(v2, old)
    save_atomic(v2, new)
    return v2


def write_atomic_text(path: str, text: str) -> None:
    """Write, fsync, rename over ``path``, then fsync the folder so the rename is durable."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(os.path.dirname(os.path.abspath(path)))
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise CheckpointError(write_failure(path, e)) from None

