"""Data-parallel v2 training under ``torchrun`` (``WORLD_SIZE`` > 1): the ranks, their share
of each batch and the few collectives the loop needs to stay in step.

Every rank draws the *global* batch (``cfg.batch`` crops, their knobs, flat crops and, inside
the network's forward, the quantization noise) from the same seeded generators and keeps its
slice: rank r of N trains on crops ``r·B/N … (r+1)·B/N − 1``. So the data are exactly the
halves (thirds, …) of what one process with the same config draws, every rank's generators
stay identical, and a checkpoint (written by rank 0) resumes on any number of ranks that
divides the batch. DistributedDataParallel averages the gradients of the per-rank mean losses,
which is the gradient of the single process's mean over the global batch.

Without ``WORLD_SIZE`` > 1 nothing here touches ``torch.distributed``.
"""

from __future__ import annotations

import datetime
import os
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode

# Random draws the network's forward may not make under data parallelism: only ``uniform_``
# is sliced from a global-batch draw; any other would give each rank different numbers.
_UNSLICED = {torch.rand, torch.randn, torch.rand_like, torch.randn_like, torch.randint,
             torch.bernoulli, torch.normal, torch.Tensor.normal_, torch.Tensor.bernoulli_,
             torch.Tensor.random_, torch.Tensor.exponential_, torch.nn.functional.dropout}


class GlobalDraws(TorchFunctionMode):
    """Within this mode, ``t.uniform_(a, b)`` on a rank's batch slice ``t`` (N_local, …) draws
    the global batch's tensor (N_local·world, …) and keeps this rank's slice: the numbers a
    single process drawing the global batch would give these crops. It holds for draws whose
    first dimension is the batch (the network's noise); other random functions are refused."""

    def __init__(self, rank: int, world: int) -> None:
        super().__init__()
        self.rank, self.world = rank, world

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.uniform_:
            t = args[0]
            n = t.shape[0]
            full = torch.empty((n * self.world, *t.shape[1:]), dtype=t.dtype, device=t.device)
            full.uniform_(*args[1:], **kwargs)
            with torch.no_grad():
                return t.copy_(full[self.rank * n : (self.rank + 1) * n])
        if func in _UNSLICED:
            raise NotImplementedError(f"{func.__name__} in a data-parallel forward: draw it "
                                      "for the global batch and slice it (distributed.py)")
        return func(*args, **kwargs)


class Shard:
    """This process's place among the data-parallel ranks (world 1: a plain single process,
    every method a no-op)."""

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.rank, self.world = rank, world

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that logs, validates and writes checkpoints."""
        return self.rank == 0

    def local(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """This rank's slice of a global-batch tensor (N, …)."""
        if t is None or not self.active:
            return t
        n = t.shape[0] // self.world
        return t[self.rank * n : (self.rank + 1) * n]

    def draws(self) -> AbstractContextManager:
        """Context for the forward pass: random draws sliced from the global batch's."""
        return GlobalDraws(self.rank, self.world) if self.active else nullcontext()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over the ranks (float64; every rank gets the same bits)."""
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def setup(batch: int) -> Shard:
    """Join the process group when started by ``torchrun`` with ``WORLD_SIZE`` > 1 (gloo: the
    v2 trainer runs on the CPU; NCCL would need a CUDA device), else a single process.

    The timeout is long because the other ranks wait at a barrier while rank 0 validates
    (minutes on a loaded machine)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard()
    if batch % world:
        raise ValueError(f"batch {batch} does not split over {world} ranks: use a multiple")
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=3))
    return Shard(dist.get_rank(), dist.get_world_size())


def teardown(shard: Shard) -> None:
    if shard.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
