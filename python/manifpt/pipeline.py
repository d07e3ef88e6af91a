"""Project fakes onto reals, in one process or under torchrun, from .npy arrays or image folders.

    manifpt project --fakes fakes.npy --reals reals.npy --out DIR
    manifpt project --fakes FAKE_DIR --reals REAL_DIR --space freq --size 64 --out DIR
    torchrun --nproc-per-node K -m manifpt.cli project ...      (same arguments)

Inputs:
- .npy arrays hold samples already in the space to project in;
- image folders are decoded (data.load_images) and embedded in `--space` (rgb, freq, sl, ssl).

With K ranks:
- **reals:** each rank takes a contiguous shard and, for image folders, embeds its shard into a
  per-rank .npy, streamed from there within --memory-budget-mb;
- **fakes:** they go through in blocks of --batch; each rank embeds its part of a block and the parts
  are all-gathered;
- **writing:** every rank projects the block onto its shard, and the block's owner rank (block
  number mod K) assembles it and writes its rows into the shared outputs. Every row is written
  exactly once: no duplicates, no gaps.

Outputs (artifacts.npy, index.npy, distance.npy, manifest.json) are written under DIR/.partial and
moved into DIR only when every block is done.
"""
from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import manifpt_ext
from manifpt_ext.distributed import shard_bounds

from .data import list_images, load_images
from .embed import get_embedder
from .io import atomic_write_json

OUTPUTS = ("artifacts.npy", "index.npy", "distance.npy")


def _open_array(path: Path, name: str) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"manifpt project: --{name} {path} is not a readable .npy array: {e}") from e
    if arr.dtype not in (np.float16, np.float32, np.float64):
        raise TypeError(f"manifpt project: --{name} {path} has dtype {arr.dtype}; need float16, float32 or float64")
    if arr.ndim < 2:
        raise ValueError(f"manifpt project: --{name} {path} must be (samples, ...), got shape {arr.shape}")
    return arr


class _Source:
    """Rows of an input: a .npy array (already embedded) or an image folder (embedded on the fly)."""

    def __init__(self, path: Path, name: str, embedder, size: int | None):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"manifpt project: --{name} {path} does not exist")
        self.name, self.embedder, self.size = name, embedder, size
        if path.is_dir():
            self.files = list_images(path)
            if name == "fakes" and (path / "real").is_dir():  # a GM folder: every model's images, not its reals
                self.files = [f for f in self.files if f.relative_to(path).parts[0] != "real"]
            if not self.files:
                raise ValueError(f"manifpt project: --{name} folder {path} holds no images")
            self.array = None
            self.n = len(self.files)
        else:
            self.files = None
            self.array = _open_array(path, name)
            self.n = self.array.shape[0]

    def rows(self, start: int, stop: int) -> torch.Tensor:
        if self.array is not None:
            return torch.from_numpy(np.array(self.array[start:stop]))  # a copy: the map is read-only
        images, _ = load_images(self.files[start:stop], self.size)
        return self.embedder.embed(images)

    def sample_shape_dtype(self) -> tuple[tuple[int, ...], np.dtype]:
        if self.array is not None:
            return self.array.shape[1:], self.array.dtype
        one = self.rows(0, 1)
        return tuple(one.shape[1:]), np.dtype(str(one.dtype).removeprefix("torch."))


def run(
    fakes_path: Path,
    reals_path: Path,
    out: Path,
    *,
    space: str = "rgb",
    size: int | None = None,
    weights: str | None = None,
    batch: int = 4096,
    memory_budget: int | None = None,
    timeout_s: float = 600.0,
    progress: bool = True,
) -> dict:
    """Projects every fake; returns the run's manifest (also written to out/manifest.json by rank 0)."""
    if batch < 1:
        raise ValueError(f"manifpt project: --batch must be >= 1, got {batch}")
    fake_is_dir, real_is_dir = Path(fakes_path).is_dir(), Path(reals_path).is_dir()
    embedder = get_embedder(space, weights=weights) if (fake_is_dir or real_is_dir) else None
    fakes = _Source(fakes_path, "fakes", embedder, size)
    reals = _Source(reals_path, "reals", embedder, size)
    (f_shape, f_dtype), (r_shape, r_dtype) = fakes.sample_shape_dtype(), reals.sample_shape_dtype()
    if f_shape != r_shape or f_dtype != r_dtype:
        raise ValueError(
            f"manifpt project: fakes (samples of {f_shape}, {f_dtype}) and reals ({r_shape}, {r_dtype}) must share the "
            "per-sample shape and the dtype (for image folders: pass --size to bring images to one size)"
        )

    world = int(os.environ.get("WORLD_SIZE", "1"))
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_s))
    rank = dist.get_rank() if world > 1 else 0
    try:
        m, n = fakes.n, reals.n
        out = Path(out)
        partial = out / ".partial"
        partial.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()

        # This rank's shard of the reals: a slice of the array, or its images embedded into a file.
        lo, hi = shard_bounds(n, rank, world)
        if reals.array is not None:
            shard = reals.array[lo:hi]
        else:
            shard_path = partial / f"reals-rank{rank}.npy"
            emb = np.lib.format.open_memmap(shard_path, mode="w+", dtype=r_dtype, shape=(hi - lo, *r_shape))
            for s in range(lo, hi, batch):
                emb[s - lo : min(hi, s + batch) - lo] = reals.rows(s, min(hi, s + batch)).numpy()
            emb.flush()
            del emb
            shard = np.load(shard_path, mmap_mode="r")

        if rank == 0:
            np.lib.format.open_memmap(partial / OUTPUTS[0], mode="w+", dtype=f_dtype, shape=(m, *f_shape)).flush()
            np.lib.format.open_memmap(partial / OUTPUTS[1], mode="w+", dtype=np.int64, shape=(m,)).flush()
            np.lib.format.open_memmap(partial / OUTPUTS[2], mode="w+", dtype=np.float32, shape=(m,)).flush()
        if world > 1:
            dist.barrier()
        art_out, idx_out, dist_out = (np.load(partial / name, mmap_mode="r+") for name in OUTPUTS)

        bar = None
        if progress and rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=m, unit="fake", desc=f"project {space if embedder else ''} ({world} rank{'s' if world > 1 else ''})")
        for b, start in enumerate(range(0, m, batch)):
            stop = min(m, start + batch)
            block = _embedded_block(fakes, start, stop, rank, world, f_shape)
            if world > 1:
                r = manifpt_ext.distributed.project(block, shard, offset=lo, dst=b % world, memory_budget=memory_budget)
            else:
                r = manifpt_ext.project_stream(block, shard, memory_budget=memory_budget)
            if r is not None:
                art_out[start:stop] = r.artifact.numpy()
                idx_out[start:stop] = r.index.numpy()
                dist_out[start:stop] = r.distance.numpy()
            if bar is not None:
                bar.update(stop - start)
        for a in (art_out, idx_out, dist_out):
            a.flush()
        del art_out, idx_out, dist_out, shard
        if bar is not None:
            bar.close()
        if world > 1:
            dist.barrier()
        manifest = {
            "fakes": str(fakes_path),
            "reals": str(reals_path),
            "space": space if embedder else "as given (.npy)",
            "embedder": embedder.key() if embedder else None,
            "size": size,
            "shape": {"fakes": [m, *f_shape], "reals": [n, *r_shape]},
            "dtype": str(f_dtype),
            "world_size": world,
            "batch": batch,
            "seconds": time.perf_counter() - t0,
            "outputs": list(OUTPUTS),
        }
        if world > 1:
            dist.barrier()  # every rank is done with its shard file before rank 0 cleans up
        if rank == 0:
            for name in OUTPUTS:
                os.replace(partial / name, out / name)
            for leftover in partial.glob("reals-rank*.npy"):
                leftover.unlink()
            partial.rmdir()
            atomic_write_json(out / "manifest.json", manifest)
        return manifest
    finally:
        if own_group:
            dist.destroy_process_group()


def _embedded_block(fakes: _Source, start: int, stop: int, rank: int, world: int, shape) -> torch.Tensor:
    """Fakes [start, stop) in the projection space, the same on every rank. With several ranks, each
    embeds its part of the block and the parts are all-gathered (padded to one length)."""
    if world == 1 or fakes.array is not None:
        return fakes.rows(start, stop)
    lo, hi = shard_bounds(stop - start, rank, world)
    part = fakes.rows(start + lo, start + hi) if hi > lo else torch.empty((0, *shape))
    width = -(-(stop - start) // world)
    padded = torch.zeros((width, *shape), dtype=part.dtype)
    padded[: part.shape[0]] = part
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    pieces = [gathered[r][: shard_bounds(stop - start, r, world)[1] - shard_bounds(stop - start, r, world)[0]] for r in range(world)]
    return torch.cat(pieces)
