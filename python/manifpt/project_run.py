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

Outputs (artifacts.npy, index.npy, distance.npy, manifest.json):
- one run at a time holds DIR (io.OutputFolder, taken by rank 0 and agreed by every rank); a second run
  into the same DIR is refused with a message before it does any work;
- the outputs are staged under DIR/.partial (a leftover of a killed run is wiped first) and moved into
  DIR only when every block is done: the old manifest.json goes first, the new one comes last, so
  manifest.json is the mark of a complete result. A failed run removes its staging folder.
- the inputs are checked before any projection: NaN or Inf in the reals or the fakes is reported
  with its global row, on every rank at once (no rank is left waiting in a collective).
"""
from __future__ import annotations

import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import manifpt_ext
from manifpt_ext.distributed import shard_bounds

from .data import BadImagesError, list_images, load_images
from .spaces import get_embedder
from .io import OutputFolder, atomic_write_json, load_npy

OUTPUTS = ("artifacts.npy", "index.npy", "distance.npy")


def _open_array(path: Path, name: str) -> np.ndarray:
    arr = load_npy(path, f"manifpt project: --{name}")
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
        try:
            images, _ = load_images(self.files[start:stop], self.size)
        except BadImagesError as e:  # every row must exist: rows are global indices shared by all ranks
            raise BadImagesError(e.bad, hint=f"fix or remove them: manifpt project projects every image of --{self.name}") from None
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
    out = Path(out)
    holder = OutputFolder(out)
    try:
        refusal = None
        if rank == 0:
            try:
                holder.__enter__()
            except ValueError as e:
                refusal = str(e)
        if _any_rank(refusal is not None, world):  # every rank stops, not only rank 0
            raise ValueError(refusal or f"manifpt project: rank 0 could not take --out {out} (see its message)")
        partial = out / ".partial"
        try:
            manifest = _run_locked(fakes, reals, fakes_path, reals_path, partial, out, rank=rank, world=world,
                                   space=space, embedder=embedder, size=size, batch=batch, memory_budget=memory_budget,
                                   shapes=(f_shape, f_dtype, r_shape, r_dtype), progress=progress)
        except BaseException:
            if rank == 0:  # nothing half-written stays behind (the lock is still ours)
                shutil.rmtree(partial, ignore_errors=True)
            raise
        return manifest
    finally:
        holder.__exit__()
        if own_group:
            dist.destroy_process_group()


def _any_rank(flag: bool, world: int) -> bool:
    """True on every rank when `flag` is True on any (a MAX all-reduce; no collective with one rank)."""
    if world == 1:
        return flag
    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _first_nonfinite(array, start: int, stop: int, chunk: int = 1 << 14) -> int:
    """Row (counted from 0 of `array`) of the first NaN or Inf in rows [start, stop), or -1; in chunks."""
    for s in range(start, stop, chunk):
        bad = ~np.isfinite(np.asarray(array[s : min(stop, s + chunk)])).reshape(min(stop, s + chunk) - s, -1).all(axis=1)
        if bad.any():
            return s + int(np.argmax(bad))
    return -1


def _run_locked(fakes, reals, fakes_path, reals_path, partial: Path, out: Path, *, rank, world, space, embedder, size,
                batch, memory_budget, shapes, progress) -> dict:
    f_shape, f_dtype, r_shape, r_dtype = shapes
    m, n = fakes.n, reals.n
    if rank == 0:
        shutil.rmtree(partial, ignore_errors=True)  # a killed run's leftovers: we hold the folder now
    if world > 1:
        dist.barrier()
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
    bad = _first_nonfinite(shard, 0, hi - lo)
    bad_row = torch.tensor([lo + bad if bad >= 0 else n])
    if world > 1:
        dist.all_reduce(bad_row, op=dist.ReduceOp.MIN)
    if int(bad_row) < n:
        raise ValueError(f"manifpt project: --reals {reals_path} contains NaN or Inf (first at row {int(bad_row)})")
    if fakes.array is not None:
        bad = _first_nonfinite(fakes.array, 0, m)
        if bad >= 0:
            raise ValueError(f"manifpt project: --fakes {fakes_path} contains NaN or Inf (first at row {bad})")

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
        dist.barrier()  # every rank is done with its rows and its shard file before rank 0 publishes
    if rank == 0:
        (out / "manifest.json").unlink(missing_ok=True)  # from here until the new one, DIR is not a result
        manifest["bytes"] = {name: (partial / name).stat().st_size for name in OUTPUTS}
        for name in OUTPUTS:
            os.replace(partial / name, out / name)
        shutil.rmtree(partial)
        atomic_write_json(out / "manifest.json", manifest)
    if world > 1:
        dist.barrier()  # the result is published before any rank returns
    return manifest


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
