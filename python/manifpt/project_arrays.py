"""Project fakes onto reals stored as .npy arrays, in one process or under torchrun.

    manifpt project --fakes fakes.npy --reals reals.npy --out DIR
    torchrun --nproc-per-node K -m manifpt.cli project --fakes ... --reals ... --out DIR

The arrays hold samples already in the space to project in: RGB images (N, C, H, W), or embeddings
(N, D). The image-folder embedders arrive with the attribution pipeline. With K ranks:
- each rank reads only its contiguous shard of the reals, streamed from the file within
  --memory-budget-mb;
- the fakes go through in blocks of --batch rows; every rank projects each block onto its shard, and
  the block's owner rank (block number mod K) assembles it and writes its rows into the shared output
  arrays.
So every row is written exactly once: no duplicates, no gaps. The outputs are written under
DIR/.partial and moved into DIR only when every block is done, so an interrupted run leaves no
output that looks complete.
"""
from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import manifpt_ext
from manifpt_ext.distributed import shard_bounds

from .io import atomic_write_json

OUTPUTS = ("artifacts.npy", "index.npy", "distance.npy")


def _open_input(path: Path, name: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifpt project: --{name} file {path} does not exist")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"manifpt project: --{name} {path} is not a readable .npy array: {e}") from e
    if arr.dtype not in (np.float16, np.float32, np.float64):
        raise TypeError(f"manifpt project: --{name} {path} has dtype {arr.dtype}; need float16, float32 or float64")
    if arr.ndim < 2:
        raise ValueError(f"manifpt project: --{name} {path} must be (samples, ...), got shape {arr.shape}")
    return arr


def run(
    fakes_path: Path,
    reals_path: Path,
    out: Path,
    *,
    batch: int = 4096,
    memory_budget: int | None = None,
    timeout_s: float = 600.0,
    progress: bool = True,
) -> dict:
    """Projects every fake; returns the run's manifest (also written to out/manifest.json on rank 0)."""
    fakes, reals = _open_input(fakes_path, "fakes"), _open_input(reals_path, "reals")
    if fakes.shape[1:] != reals.shape[1:] or fakes.dtype != reals.dtype:
        raise ValueError(
            f"manifpt project: fakes {fakes.shape} {fakes.dtype} and reals {reals.shape} {reals.dtype} must share "
            "the per-sample shape and the dtype"
        )
    if batch < 1:
        raise ValueError(f"manifpt project: --batch must be >= 1, got {batch}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_s))
    rank = dist.get_rank() if world > 1 else 0
    try:
        m, n = fakes.shape[0], reals.shape[0]
        lo, hi = shard_bounds(n, rank, world)
        shard = reals[lo:hi]
        out = Path(out)
        partial = out / ".partial"
        if rank == 0:
            partial.mkdir(parents=True, exist_ok=True)
            np.lib.format.open_memmap(partial / OUTPUTS[0], mode="w+", dtype=fakes.dtype, shape=fakes.shape).flush()
            np.lib.format.open_memmap(partial / OUTPUTS[1], mode="w+", dtype=np.int64, shape=(m,)).flush()
            np.lib.format.open_memmap(partial / OUTPUTS[2], mode="w+", dtype=np.float32, shape=(m,)).flush()
        if world > 1:
            dist.barrier()
        art_out, idx_out, dist_out = (np.load(partial / name, mmap_mode="r+") for name in OUTPUTS)

        blocks = list(range(0, m, batch))
        bar = None
        if progress and rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=m, unit="fake", desc=f"project ({world} rank{'s' if world > 1 else ''})")
        t0 = time.perf_counter()
        for b, start in enumerate(blocks):
            block = torch.from_numpy(np.array(fakes[start : start + batch]))  # a copy: the map is read-only
            if world > 1:
                r = manifpt_ext.distributed.project(block, shard, offset=lo, dst=b % world, memory_budget=memory_budget)
            else:
                r = manifpt_ext.project_stream(block, shard, memory_budget=memory_budget)
            if r is not None:
                stop = start + block.shape[0]
                art_out[start:stop] = r.artifact.numpy()
                idx_out[start:stop] = r.index.numpy()
                dist_out[start:stop] = r.distance.numpy()
            if bar is not None:
                bar.update(block.shape[0])
        for a in (art_out, idx_out, dist_out):
            a.flush()
        del art_out, idx_out, dist_out
        if bar is not None:
            bar.close()
        if world > 1:
            dist.barrier()
        manifest = {
            "fakes": str(fakes_path),
            "reals": str(reals_path),
            "shape": {"fakes": list(fakes.shape), "reals": list(reals.shape)},
            "dtype": str(fakes.dtype),
            "world_size": world,
            "batch": batch,
            "seconds": time.perf_counter() - t0,
            "outputs": list(OUTPUTS),
        }
        if rank == 0:
            for name in OUTPUTS:
                os.replace(partial / name, out / name)
            partial.rmdir()
            atomic_write_json(out / "manifest.json", manifest)
        return manifest
    finally:
        if own_group:
            dist.destroy_process_group()
