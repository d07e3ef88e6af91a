"""Artifacts on disk: a folder of .npy arrays, written in chunks and read in batches, never whole.

    OUT/artifacts.npy   (M, *shape) float32   the artifacts
    OUT/labels.npy      (M,) int64            model of each row (ds.models order)
    OUT/index.npy       (M,) int64            nearest real
    OUT/distance.npy    (M,) float32          squared distance to it
    OUT/identical.npy   (M,) bool             artifact is exactly zero (a copy of a real)
    OUT/store.json      the manifest: format, models, space, shape, ... (written last)

- **Writing** (`ChunkedWriter`): the arrays are created under OUT/.partial as memmaps; each chunk's rows
  are written and flushed, then the chunk is recorded in .partial/progress.json (atomically). A killed
  run resumes with the chunks it had not recorded, if the run has the same `key` (the data, space and
  settings); the arrays move into OUT and store.json comes last, so store.json marks a complete store.
- **Reading** (`ArtifactStore`, `RowReader`): rows are read with `os.preadv` into batch buffers, so a
  file much larger than memory never enters the process's RSS (a memmap would keep every touched page
  mapped). `RowReader` counts the rows and bytes it read: the tests check that no read takes the whole
  array.
- **Statistics** (`streamed_stats`): per-channel mean and std in float64, merged chunk by chunk with
  Chan et al.'s pairwise update, so they match the in-RAM values to float64 rounding.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from .io import atomic_write_json

FORMAT = "manifpt-artifacts-v1"
ARRAYS = {"artifacts": None, "labels": np.int64, "index": np.int64, "distance": np.float32, "identical": np.bool_}


def parse_bytes(text: str | int | None, flag: str = "--memory-budget") -> int | None:
    """'2GB', '512MiB', '1.5G', '1000000' -> bytes (GB = 2^30 here, as free(1) and torch report memory)."""
    if text is None or isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(text))
    if not m:
        raise ValueError(f"{flag} must be a size such as 2GB, 512MB or 1000000 (bytes), got {text!r}")
    value = float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " ")
    if value < 1:
        raise ValueError(f"{flag} must be at least 1 byte, got {text!r}")
    return int(value)


class ChunkedWriter:
    """Writes a store of `m` rows in chunks of `chunk` rows: `for k in w.todo(): w.write(k, arrays)`, then
    `w.finish(manifest)`. `key` (any JSON value) says which run the chunks belong to: a .partial of
    another key is wiped and started again."""

    def __init__(self, out: Path, m: int, shape: tuple[int, ...], chunk: int, key, dtype=np.float32):
        if m < 1 or chunk < 1:
            raise ValueError(f"ChunkedWriter: need at least one row and one row per chunk, got {m} rows, chunk {chunk}")
        self.out, self.m, self.chunk = Path(out), int(m), int(chunk)
        self.partial = self.out / ".partial"
        self.key = json.loads(json.dumps(key, default=str))
        progress = self.partial / "progress.json"
        state = json.loads(progress.read_text()) if progress.is_file() else None
        if state is None or state.get("key") != self.key or state.get("chunk") != self.chunk:
            shutil.rmtree(self.partial, ignore_errors=True)
            self.partial.mkdir(parents=True)
            shapes = {"artifacts": (m, *shape), **{n: (m,) for n in ARRAYS if n != "artifacts"}}
            for name, t in ARRAYS.items():
                np.lib.format.open_memmap(self.partial / f"{name}.npy", mode="w+", dtype=t or dtype, shape=shapes[name]).flush()
            state = {"key": self.key, "chunk": self.chunk, "done": []}
            atomic_write_json(progress, state)
        self.done = set(state["done"])
        self.resumed = bool(self.done)
        self._maps = {n: np.load(self.partial / f"{n}.npy", mmap_mode="r+") for n in ARRAYS}

    @property
    def chunks(self) -> int:
        return -(-self.m // self.chunk)

    def bounds(self, k: int) -> tuple[int, int]:
        return k * self.chunk, min(self.m, (k + 1) * self.chunk)

    def todo(self) -> list[int]:
        return [k for k in range(self.chunks) if k not in self.done]

    def write(self, k: int, arrays: dict[str, np.ndarray]) -> None:
        lo, hi = self.bounds(k)
        for name, a in arrays.items():
            self._maps[name][lo:hi] = a
        for name in arrays:
            self._maps[name].flush()
        self.done.add(k)
        atomic_write_json(self.partial / "progress.json", {"key": self.key, "chunk": self.chunk, "done": sorted(self.done)})

    def finish(self, manifest: dict) -> dict:
        missing = self.todo()
        if missing:
            raise RuntimeError(f"manifpt: store {self.out} is missing chunks {missing[:5]}")
        self._maps.clear()  # the memmaps are closed before their files move
        (self.out / "store.json").unlink(missing_ok=True)
        for name in ARRAYS:
            os.replace(self.partial / f"{name}.npy", self.out / f"{name}.npy")
        shutil.rmtree(self.partial)
        manifest = {"format": FORMAT, "rows": self.m, **manifest}
        atomic_write_json(self.out / "store.json", manifest)
        return manifest


class ArtifactStore:
    """A finished store (the folder `manifpt artifacts` writes): labels, identical and distance are
    small and read whole; the artifacts are read in rows by a RowReader."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        meta = self.folder / "store.json"
        if not meta.is_file():
            raise FileNotFoundError(f"--artifacts {self.folder} has no store.json: it is not (or not yet completely) "
                                    "a folder written by `manifpt artifacts`")
        self.meta = json.loads(meta.read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"--artifacts {self.folder}: store.json is not {FORMAT}")
        self.path = self.folder / "artifacts.npy"
        mm = np.load(self.path, mmap_mode="r")
        self.shape, self.dtype, self.offset = tuple(mm.shape), mm.dtype, mm.offset
        del mm
        self.labels = torch.from_numpy(np.load(self.folder / "labels.npy"))
        self.identical = torch.from_numpy(np.load(self.folder / "identical.npy"))
        self.index = torch.from_numpy(np.load(self.folder / "index.npy"))
        self.distance = torch.from_numpy(np.load(self.folder / "distance.npy"))
        if self.shape[0] != len(self.labels):
            raise ValueError(f"--artifacts {self.folder}: {self.shape[0]} artifacts but {len(self.labels)} labels")

    @property
    def models(self) -> list[str]:
        return list(self.meta["models"])

    def reader(self) -> "RowReader":
        return RowReader(self.path, self.shape, self.dtype, self.offset)


class RowReader:
    """Rows of a C-ordered .npy file, read with preadv (no memmap, no page kept in RSS). Picklable, so
    DataLoader workers each open their own descriptor."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype, offset: int):
        self.path, self.shape, self.dtype, self.offset = Path(path), tuple(shape), np.dtype(dtype), int(offset)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.rows_read = 0
        self.largest_read = 0
        self._fd: int | None = None

    def __getstate__(self):
        return {**self.__dict__, "_fd": None}

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, rows) -> np.ndarray:
        """The rows `rows` (any order) as a new array; adjacent rows are read in one call."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        if len(rows) == 0:
            return out
        order = np.argsort(rows, kind="stable")
        flat = out.reshape(len(rows), -1).view(np.uint8)
        srt = rows[order]
        if srt[0] < 0 or srt[-1] >= self.shape[0]:
            raise IndexError(f"row {int(srt[0] if srt[0] < 0 else srt[-1])} outside {self.path} ({self.shape[0]} rows)")
        # runs of consecutive rows, placed where `order` puts them; a contiguous run is one syscall
        start = 0
        for end in range(1, len(srt) + 1):
            if end < len(srt) and srt[end] == srt[end - 1] + 1 and order[end] == order[end - 1] + 1:
                continue
            dst = flat[order[start] : order[start] + (end - start)].reshape(-1)
            want, got = dst.nbytes, 0
            while got < want:
                n = os.preadv(self._fd, [memoryview(dst[got:])], self.offset + int(srt[start]) * self.row_bytes + got)
                if n <= 0:
                    raise OSError(f"short read in {self.path}")
                got += n
            start = end
        self.rows_read += len(rows)
        self.largest_read = max(self.largest_read, len(rows))
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def chunk_rows(row_bytes: int, memory_budget: int | None, default: int = 4096, copies: int = 4) -> int:
    """Rows per chunk so that `copies` chunk-sized buffers fit in the budget."""
    if memory_budget is None:
        return default
    return max(1, int(memory_budget // (copies * max(1, row_bytes))))


def _reduce_dims(ndim: int) -> tuple[int, ...]:
    # per channel for images (N, C, H, W), over all of a one-channel (N, H, W), per feature otherwise
    return (0, 2, 3) if ndim == 4 else (0, 1, 2) if ndim == 3 else (0,)


STATS_PIECE_ELEMENTS = 1 << 22  # 32 MiB of float64: a chunk's float64 copy and its temporaries stay small


def _pieces(batches):
    """Each chunk in float64, a few rows at a time: a chunk sized to a quarter of the memory budget would
    otherwise be doubled by .double() and again by each temporary of its squared deviations."""
    for b in batches:
        b = torch.as_tensor(b)
        step = max(1, STATS_PIECE_ELEMENTS // max(1, b[0].numel())) if len(b) else 1
        for i in range(0, len(b), step):
            yield b[i : i + step].double()


def streamed_stats(batches) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) std, per channel as the Attributor standardises, over an iterable of float
    arrays/tensors (chunks of rows), in float64: each chunk's count, mean and sum of squared deviations,
    merged with Chan et al.'s update (no catastrophic cancellation, any chunking). Returns float32
    tensors of shape (1, C, 1, 1) / (1, D), like the in-RAM torch.mean(keepdim=True)."""
    n, mean, m2 = 0, None, None
    for x in _pieces(batches):
        dims = _reduce_dims(x.dim())
        nb = x.numel() // int(np.prod([x.shape[d] for d in range(x.dim()) if d not in dims], dtype=np.int64) or 1)
        mb = x.mean(dim=dims, keepdim=True)
        m2b = ((x - mb) ** 2).sum(dim=dims, keepdim=True)
        if mean is None:
            n, mean, m2 = nb, mb, m2b
            continue
        delta = mb - mean
        total = n + nb
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta**2 * (n * nb / total)
        n = total
    if mean is None:
        raise ValueError("streamed_stats: no rows")
    std = (m2 / max(n - 1, 1)).sqrt()
    return mean.float(), std.float().clamp_min(1e-8)


class Rows:
    """Artifacts with their labels, selected by `rows` (positions in the source; default: all): a tensor in
    RAM, or a RowReader of a file on disk. Both give the same batches, so both train alike."""

    def __init__(self, source, labels=None, rows=None):
        self.source = source
        self.labels = None if labels is None else torch.as_tensor(labels)
        self.rows = torch.arange(len(source)) if rows is None else torch.as_tensor(rows, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def on_disk(self) -> bool:
        return isinstance(self.source, RowReader)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape[1:])

    def x(self, positions) -> torch.Tensor:
        r = self.rows[torch.as_tensor(positions, dtype=torch.long)]
        if self.on_disk:
            return torch.from_numpy(self.source.read(r.numpy()))
        return self.source[r]

    def y(self, positions=None) -> torch.Tensor:
        return self.labels[self.rows if positions is None else self.rows[torch.as_tensor(positions, dtype=torch.long)]]

    def subset(self, positions) -> "Rows":
        return Rows(self.source, self.labels, self.rows[torch.as_tensor(positions, dtype=torch.long)])

    def chunks(self, size: int):
        """x of consecutive positions, `size` rows at a time."""
        for i in range(0, len(self), size):
            yield self.x(torch.arange(i, min(len(self), i + size)))


class BatchDataset(torch.utils.data.Dataset):
    """A DataLoader dataset whose items are whole batches: dataset[positions] -> (x, y), so each batch is
    one batched read (sorted, adjacent rows in one call) instead of `batch_size` calls."""

    def __init__(self, rows: Rows):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, positions):
        return self.rows.x(positions), self.rows.y(positions)


def loader(rows: Rows, batches, *, workers: int = 0, pin_memory: bool = False):
    """A DataLoader that yields (x, y) of each batch of positions in `batches`, in order, read by `workers`
    processes ahead of the training step (pinned for an asynchronous copy to the GPU); with no workers, read
    one batch ahead in a thread (read_ahead)."""
    data = torch.utils.data.DataLoader(BatchDataset(rows), sampler=batches, batch_size=None, num_workers=workers,
                                       pin_memory=pin_memory)
    return data if workers else read_ahead(data)


_END = object()


def read_ahead(iterable):
    """The items of `iterable`, the next one fetched in a thread while the caller works on this one.

    Why: with no worker processes a DataLoader reads each batch only when the step asks for it, so the
    disk's latency (64 scattered rows out of the page cache) adds to every step. The read is preadv and
    numpy copies, which release the GIL, so one thread hides it without a worker process (and its own copy
    of the torch runtime). It holds one batch more, which `--workers 0`'s count of two batches in flight
    (scale_fit._check_budget) already includes. An error in the read is raised at the item it belongs to."""
    from concurrent.futures import ThreadPoolExecutor

    it = iter(iterable)
    with ThreadPoolExecutor(1, thread_name_prefix="manifpt-read-ahead") as pool:
        upcoming = pool.submit(next, it, _END)
        while True:
            item = upcoming.result()
            if item is _END:
                return
            upcoming = pool.submit(next, it, _END)
            yield item
