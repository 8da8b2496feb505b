"""Data-parallel training over ``torch.distributed`` (gloo on CPUs, NCCL on GPUs).

Every rank holds the whole network and the same data order, augmentation and beta signs (the
``data`` and ``sign`` streams are seeded identically everywhere). Each global batch of
``batch_size`` samples is split into ``world_size`` contiguous shards (:meth:`DataParallel.shard`);
a rank runs the EP phases on its shard only, and the contrasts (each a mean over the shard) are
combined into the mean over the global batch before the optimizer step (:meth:`average_grads`).
The weights therefore follow the single-process run with the same global batch; with Bernoulli
spikes each rank draws from its own spike stream (seed + rank), so the spikes differ from a single
process while their distribution is the same. Only rank 0 writes checkpoints and metrics; a
checkpoint carries every rank's spike stream, so a resumed run continues exactly.

Launch with ``stochep train --nproc K ...`` (one machine) or ``torchrun`` (docs/scale-out.md).
A plain process has world size 1 and none of this does anything.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def rank_device(device: str | torch.device) -> torch.device:
    """The device this process computes on: ``device``, except that under a data-parallel
    launch a CUDA device becomes this rank's own GPU, ``cuda:LOCAL_RANK`` (a config saying
    ``cuda`` or ``cuda:0`` must not put every rank on one GPU)."""
    dev = torch.device(device)
    if dev.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return dev


def backend_for(device: str | torch.device) -> str:
    """NCCL for CUDA devices, gloo otherwise: the one place the backend is chosen."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(device: str) -> bool:
    """Join the process group that ``torchrun`` (or ``stochep train --nproc``) describes in the
    environment (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``, ...); False when not launched so.
    On GPUs the rank's device is set first and named to the group (``device_id``), so NCCL
    binds each rank to its own GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    dev = rank_device(device)
    if backend_for(dev) == "nccl":
        torch.cuda.set_device(dev)
        dist.init_process_group("nccl", device_id=dev)
    else:
        dist.init_process_group("gloo")
    return True


class DataParallel:
    """This process's place in the group: ``rank``, ``world_size``, and the collective steps.
    Every tensor a collective gets lives on ``device`` (NCCL takes no CPU tensors)."""

    def __init__(self, device: str | torch.device = "cpu"):
        active = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if active else 0
        self.world_size = dist.get_world_size() if active else 1
        self.device = rank_device(device)

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes checkpoints, metrics and the progress bar."""
        return self.rank == 0

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous part of a global batch (sizes differ by at most one)."""
        return x if self.world_size == 1 else x.tensor_split(self.world_size)[self.rank]

    def average_grads(self, params, n_local: int) -> None:
        """Turn every rank's shard-mean gradient into the global-batch mean:
        ``sum_r n_r g_r / sum_r n_r``, one all-reduce for all parameters."""
        if self.world_size == 1:
            return
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) * n_local for g in grads]
                         + [torch.tensor([float(n_local)], device=grads[0].device,
                                         dtype=grads[0].dtype)])
        dist.all_reduce(flat)
        flat = flat[:-1] / flat[-1]
        k = 0
        for g in grads:
            g.copy_(flat[k:k + g.numel()].view_as(g))
            k += g.numel()

    def sum(self, *values: float) -> list[float]:
        """Sum numbers (counts, loss totals) over the ranks."""
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def broadcast_params(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters everywhere (after a data-dependent initialisation)."""
        if self.world_size > 1:
            for p in module.parameters():
                dist.broadcast(p.data, 0)

    def gather(self, obj) -> list:
        """Every rank's ``obj`` (e.g. its spike stream's state), in rank order."""
        if self.world_size == 1:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        """Leave the group together: wait for every rank (rank 0 may still be writing the last
        checkpoint), then tear the group down before the interpreter exits. A rank that exits
        while a peer still holds the connection can die in gloo's destructor (SIGABRT)."""
        if self.world_size > 1 and dist.is_initialized():
            self.barrier()
            dist.destroy_process_group()
