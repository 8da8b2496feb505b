"""Where the training set lives while a run trains: on the accelerator itself when it fits.

Gathering each batch from host memory costs a blocking host-to-device copy per batch (pageable
memory cannot be copied asynchronously). A training set that takes at most ``SHARE`` of the
device's free memory (CIFAR-10 as float32 is 0.6 GB) is copied there once, and batches are then
gathered on the device. On a CPU, or where it does not fit, the tensors stay where they are.
"""
from __future__ import annotations

import torch

SHARE = 0.25  # of the device's free memory, leaving the rest to the network and its phases


def fits(nbytes: int, device: torch.device, free_bytes: int | None) -> bool:
    """Whether ``nbytes`` of data go on ``device`` (an accelerator with ``free_bytes`` free)."""
    return device.type != "cpu" and free_bytes is not None and nbytes <= SHARE * free_bytes


def resident(tensors: list[torch.Tensor], device: torch.device
             ) -> tuple[list[torch.Tensor], bool]:
    """``tensors`` on ``device`` if together they fit (:func:`fits`), else unchanged; and
    whether they were moved. The caller's tensors are never modified."""
    device = torch.device(device)
    nbytes = sum(t.numel() * t.element_size() for t in tensors)
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    if not fits(nbytes, device, free):
        return list(tensors), False
    return [t.to(device) for t in tensors], True
