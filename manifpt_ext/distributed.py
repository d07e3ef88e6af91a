"""Projection onto reals sharded over torch.distributed ranks (gloo on CPU, NCCL on GPU).

Every rank holds the same fakes and its own shard of the reals (rows offset .. offset + n_local of
the global real set). Each rank projects onto its shard with the fused op. The ranks then agree on
the global winner per fake under the same order as one project call:
- the key is the float64 distance on the CPU (see stream.py) or the float32 one on CUDA;
- the lowest global index wins ties.

The artifact rows are assembled from the winning ranks with a sum over integer views of the rows.
Exactly one rank contributes non-zero bits per row, so the sum is exact and bitwise for every dtype;
a float sum would turn -0.0 into +0.0.

Failures: a rank that dies makes the collectives of the others fail instead of hanging, within the
process group's `timeout` (set it in init_process_group; the default is 10-30 minutes).
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.distributed as dist

from .ops import Projection, project as _project_local, row_sqdist
from .stream import project_stream

_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_NO_INDEX = torch.iinfo(torch.int64).max


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows [start, stop) of an n-row set that rank `rank` of `world` holds (contiguous, balanced)."""
    return n * rank // world, n * (rank + 1) // world


@contextlib.contextmanager
def _collective(rank: int, what: str):
    try:
        yield
    except RuntimeError as e:
        raise RuntimeError(
            f"manifpt.distributed.project: {what} failed on rank {rank} (did another rank fail or time out?): {e}"
        ) from e


def project(
    fakes: torch.Tensor,
    local_reals,
    *,
    offset: int | None = None,
    group=None,
    dst: int = 0,
    all_ranks: bool = False,
    memory_budget: int | None = None,
    tile_m: int = 0,
    tile_n: int = 0,
) -> Projection | None:
    """:func:`manifpt_ext.project` with the reals sharded over the ranks of `group`.

    Args:
        fakes: Tensor[M, *S], the same on every rank.
        local_reals: this rank's shard (n_r, *S), may be empty: a tensor (projected in one call) or a
            numpy array / np.memmap slice (streamed with project_stream within memory_budget).
        offset: global index of this shard's first real. Default: shards are taken to be in rank
            order, and offsets are the running sum of the shard sizes (one all_gather).
        dst: the rank (in `group`) that receives the result; with all_ranks=True every rank does.

    Returns:
        On dst (or every rank): Projection(artifact, index, distance) equal to one project() call on
        the concatenated reals; index holds global indices. On the other ranks: None.
    """
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("manifpt.distributed.project: torch.distributed is not initialised (call init_process_group)")
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if not 0 <= dst < world:
        raise ValueError(f"manifpt.distributed.project: dst must be a rank in [0, {world}), got {dst}")
    if not isinstance(local_reals, (torch.Tensor, np.ndarray)):
        raise TypeError(
            f"manifpt.distributed.project: local_reals must be a tensor or numpy array, got {type(local_reals).__name__}"
        )
    if tuple(local_reals.shape[1:]) != tuple(fakes.shape[1:]):
        raise ValueError(
            "manifpt.distributed.project: fakes (M, *S) and local_reals (n, *S) must share the trailing shape S, got "
            f"{tuple(fakes.shape)} and {tuple(local_reals.shape)}"
        )
    dev = fakes.device
    m, n_local = fakes.shape[0], local_reals.shape[0]

    sizes = torch.tensor([n_local], dtype=torch.long, device=dev)
    all_sizes = [torch.zeros_like(sizes) for _ in range(world)]
    with _collective(rank, "exchanging shard sizes"):
        dist.all_gather(all_sizes, sizes, group=group)
    all_sizes = [int(s.item()) for s in all_sizes]
    if sum(all_sizes) == 0:
        raise ValueError("manifpt.distributed.project: reals is empty on every rank (N = 0)")
    if offset is None:
        offset = sum(all_sizes[:rank])

    artifact = torch.zeros_like(fakes, memory_format=torch.contiguous_format)
    if n_local > 0:
        if isinstance(local_reals, torch.Tensor):
            p = _project_local(fakes, local_reals, tile_m=tile_m, tile_n=tile_n)
        else:
            p = project_stream(fakes, local_reals, memory_budget=memory_budget, tile_m=tile_m, tile_n=tile_n)
        d32, index = p.distance, p.index + offset
        # float64 key of the local winner = its exact distance: the fake minus its artifact is not
        # exact, so the winning real row is read again (one row per fake).
        if dev.type == "cpu":
            winners = local_reals[p.index.numpy()] if isinstance(local_reals, np.ndarray) else local_reals[p.index]
            key = row_sqdist(fakes, torch.as_tensor(winners))  # fancy indexing made a contiguous copy
        else:
            key = d32.double()
    else:
        p = None
        d32 = torch.full((m,), float("inf"), device=dev)
        key = torch.full((m,), float("inf"), dtype=torch.float64, device=dev)
        index = torch.full((m,), _NO_INDEX, dtype=torch.long, device=dev)

    keys = [torch.empty_like(key) for _ in range(world)]
    indices = [torch.empty_like(index) for _ in range(world)]
    dists = [torch.empty_like(d32) for _ in range(world)]
    with _collective(rank, "gathering the local minima"):
        dist.all_gather(keys, key, group=group)
        dist.all_gather(indices, index, group=group)
        dist.all_gather(dists, d32, group=group)
    keys, indices, dists = torch.stack(keys), torch.stack(indices), torch.stack(dists)
    best_key = keys.min(dim=0).values
    tied = keys == best_key
    win_index = torch.where(tied, indices, torch.full_like(indices, _NO_INDEX)).min(dim=0).values
    win_rank = (tied & (indices == win_index)).int().argmax(dim=0)  # unique: indices are global
    distance = dists.gather(0, win_rank[None]).squeeze(0)

    if p is not None:
        won = win_rank == rank
        artifact[won] = p.artifact[won]
    bits = _int_view(artifact)
    with _collective(rank, "assembling the artifact"):
        if all_ranks:
            dist.all_reduce(bits, op=dist.ReduceOp.SUM, group=group)
        else:
            root = dist.get_global_rank(group, dst) if group is not None else dst
            dist.reduce(bits, dst=root, op=dist.ReduceOp.SUM, group=group)
    if not all_ranks and rank != dst:
        return None
    return Projection(_from_int_view(bits, artifact), win_index, distance)


def _int_view(t: torch.Tensor) -> torch.Tensor:
    """Bits of t as integers wide enough for collectives to sum (16-bit types widened to int32); for
    32/64-bit types a view of t itself, which the in-place reduce may overwrite."""
    v = t.reshape(-1).view(_INT_VIEW[t.element_size()])
    return v.to(torch.int32) if t.element_size() < 4 else v


def _from_int_view(bits: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    width = _INT_VIEW[like.element_size()]
    return bits.to(width).view(like.dtype).reshape(like.shape)
