"""Atomic checkpoint files: write to a temporary file in the same folder, fsync, then rename."""
from __future__ import annotations

import os
import tempfile

import torch


class CheckpointError(Exception):
    """A checkpoint is missing, truncated or not a stochep checkpoint."""


def save_atomic(obj: dict, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str) -> dict:
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, wrong format, ...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint ({msg})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "stochep-checkpoint-v1":
        raise CheckpointError(f"checkpoint {path} is not a stochep checkpoint")
    return ckpt
