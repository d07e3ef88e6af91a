"""Projection onto real sets larger than memory: the reals are streamed in chunks.

`project_stream(fakes, reals)` gives the same answer as `project(fakes, concatenation of reals)`,
bitwise for index and artifact, while holding only one or two chunks of reals at a time.

How the chunks merge: each chunk is projected with the fused op, and the running best per fake is
kept with global indices. A chunk's candidate replaces the best so far only if it is strictly nearer.
The CPU op ranks by the float64 distance (rounded to float32 in its output). Rounding is monotone, so
a strictly smaller float32 distance means a strictly smaller float64 one; only float32 ties need the
float64 value, which `row_sqdist` computes with the op's own arithmetic. The CUDA op ranks by its
float32 distance itself. On an exact tie the earlier chunk, i.e. the lower global index, keeps the row.
"""
from __future__ import annotations

import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from .ops import Projection, project, row_sqdist

_NP_TO_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64, np.dtype(np.float16): torch.float16}
_MAX_DEFAULT_BUDGET = 1 << 30


def default_memory_budget(device: torch.device) -> int:
    """Bytes of reals to hold at once: a quarter of what is free (RAM or device memory), at most 1 GiB."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        free = _mem_available()
    return int(max(16 << 20, min(_MAX_DEFAULT_BUDGET, free // 4)))


def _mem_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


class _Merge:
    """Running (distance, index) minimum per fake over chunks of reals, and the winning artifact rows."""

    def __init__(self, fakes: torch.Tensor):
        m = fakes.shape[0]
        self.fakes = fakes
        self.exact64 = fakes.device.type == "cpu"
        self.d32 = torch.full((m,), float("inf"), dtype=torch.float32, device=fakes.device)
        self.d64 = torch.full((m,), float("inf"), dtype=torch.float64, device=fakes.device)
        self.index = torch.full((m,), -1, dtype=torch.long, device=fakes.device)
        self.artifact = torch.empty_like(fakes, memory_format=torch.contiguous_format)

    def add(self, chunk: torch.Tensor, offset: int, tile_m: int, tile_n: int) -> None:
        p = project(self.fakes, chunk, tile_m=tile_m, tile_n=tile_n)
        if self.exact64:
            rows = torch.nonzero(p.distance <= self.d32).flatten()  # improved or tied in float32
            if rows.numel() == 0:
                return
            d64 = row_sqdist(self.fakes[rows], chunk[p.index[rows]])
            keep = d64 < self.d64[rows]
            rows, d64 = rows[keep], d64[keep]
            self.d64[rows] = d64
        else:
            rows = torch.nonzero(p.distance < self.d32).flatten()
        self.d32[rows] = p.distance[rows]
        self.index[rows] = p.index[rows] + offset
        self.artifact[rows] = p.artifact[rows]

    def result(self) -> Projection:
        return Projection(self.artifact, self.index, self.d32)


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """Shape, dtype, Fortran order and data offset of a .npy file. Mapping it reads only the header:
    no page of data is touched, so this costs no memory."""
    if path.stat().st_size == 0:
        raise ValueError(f"manifpt.project_stream: reals file {path} is empty (0 bytes), not a .npy file")
    try:
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"manifpt.project_stream: reals file {path} is not a readable .npy array (truncated or another "
                         f"format): {e}") from None
    try:
        return mm.shape, mm.dtype, bool(mm.flags.f_contiguous and not mm.flags.c_contiguous), int(mm.offset)
    finally:
        del mm


class _NpyFileChunks:
    """Rows of a .npy file read straight into reused buffers (never mapped whole, never loaded whole);
    a background thread reads chunk k+1 while chunk k is projected. Pinned buffers when the fakes are
    on CUDA, so the host-to-device copy is asynchronous."""

    def __init__(self, path: Path, rows_per_chunk: int, device: torch.device):
        shape, dtype, fortran, self.data_offset = _npy_header(path)
        if fortran and len(shape) > 1:
            raise ValueError(f"manifpt.project_stream: reals file {path} is Fortran-ordered; save it C-ordered")
        if dtype not in _NP_TO_TORCH:
            raise TypeError(f"manifpt.project_stream: reals file {path} has dtype {dtype}; need float16, float32 or float64")
        if len(shape) < 1:
            raise ValueError(f"manifpt.project_stream: reals file {path} holds a 0-d array")
        self.path, self.shape, self.dtype = path, shape, dtype
        self.n = shape[0]
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self.rows = max(1, min(rows_per_chunk, self.n))
        pin = device.type == "cuda"
        self.buffers = [torch.empty((self.rows, *shape[1:]), dtype=_NP_TO_TORCH[dtype], pin_memory=pin) for _ in range(2)]
        self.copied = [None, None]  # CUDA events: the async copy out of each pinned buffer is done
        self.device = device

    def _read(self, f, start: int, slot: int) -> torch.Tensor:
        if self.copied[slot] is not None:
            self.copied[slot].synchronize()
        count = min(self.rows, self.n - start)
        buf = self.buffers[slot][:count]
        view = memoryview(buf.numpy()).cast("B")
        f.seek(self.data_offset + start * self.row_bytes)
        got = f.readinto(view)
        if got != count * self.row_bytes:
            raise OSError(f"manifpt.project_stream: {self.path} is truncated (read {got} of {count * self.row_bytes} bytes)")
        return buf

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        if self.n == 0:
            return
        with open(self.path, "rb", buffering=0) as f, ThreadPoolExecutor(max_workers=1) as pool:
            starts = list(range(0, self.n, self.rows))
            pending = pool.submit(self._read, f, starts[0], 0)
            for k, start in enumerate(starts):
                host = pending.result()
                if k + 1 < len(starts):
                    pending = pool.submit(self._read, f, starts[k + 1], (k + 1) % 2)
                if self.device.type == "cuda":
                    chunk = host.to(self.device, non_blocking=True)
                    ev = torch.cuda.Event()
                    ev.record()
                    self.copied[k % 2] = ev
                    yield start, chunk
                else:
                    yield start, host


def _drop_pages(array: np.ndarray) -> None:
    """Lets the kernel reclaim a processed chunk of a read-only np.memmap (else every page read stays
    in this process's RSS until the map is closed). Safe for mode 'r' only: the file is unchanged."""
    mm = getattr(array, "_mmap", None)
    if mm is None or getattr(array, "mode", None) != "r" or not hasattr(mm, "madvise"):
        return
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    start = array.ctypes.data - base
    aligned = start - start % mmap.PAGESIZE
    try:
        mm.madvise(mmap.MADV_DONTNEED, aligned, array.nbytes + (start - aligned))
    except (OSError, ValueError):
        pass


def _as_tensor(chunk, device: torch.device, name: str) -> torch.Tensor:
    if isinstance(chunk, torch.Tensor):
        t = chunk
    elif isinstance(chunk, np.ndarray):
        if chunk.dtype not in _NP_TO_TORCH:
            raise TypeError(f"manifpt.project_stream: {name} has dtype {chunk.dtype}; need float16, float32 or float64")
        t = torch.from_numpy(np.ascontiguousarray(chunk) if chunk.flags.writeable else np.array(chunk))
    else:
        raise TypeError(f"manifpt.project_stream: {name} must be a tensor or numpy array, got {type(chunk).__name__}")
    return t.to(device, non_blocking=True) if t.device != device else t


def _split(t, rows: int):
    for start in range(0, t.shape[0], rows):
        yield start, t[start : start + rows]


def _chunks(reals, rows: int, device: torch.device) -> tuple[Iterable[tuple[int, torch.Tensor]], int | None]:
    """(offset, chunk) pairs over the reals, and N when known up front."""
    if isinstance(reals, (str, os.PathLike)):
        path = Path(reals)
        if path.is_dir():
            raise ValueError(f"manifpt.project_stream: reals {path} is a folder, not a .npy file")
        if not path.is_file():
            raise FileNotFoundError(f"manifpt.project_stream: reals file {path} does not exist")
        src = _NpyFileChunks(path, rows, device)
        return src, src.n
    if isinstance(reals, torch.Tensor):
        return ((s, c.to(device, non_blocking=True)) for s, c in _split(reals, rows)), reals.shape[0]
    if isinstance(reals, np.ndarray):

        def gen():
            for s, c in _split(reals, rows):
                yield s, _as_tensor(c, device, "reals")
                _drop_pages(c)

        return gen(), reals.shape[0]
    if isinstance(reals, Iterable):

        def gen_iter():
            offset = 0
            for k, part in enumerate(reals):
                t = _as_tensor(part, device, f"reals chunk {k}")
                for s, c in _split(t, rows):
                    yield offset + s, c
                offset += t.shape[0]

        return gen_iter(), (sum(len(c) for c in reals) if isinstance(reals, (list, tuple)) else None)
    raise TypeError(
        "manifpt.project_stream: reals must be a tensor, a numpy array or memmap, a path to a .npy file, "
        f"or an iterable of tensors/arrays, got {type(reals).__name__}"
    )


def project_stream(
    fakes: torch.Tensor,
    reals,
    *,
    memory_budget: int | None = None,
    progress: bool = False,
    tile_m: int = 0,
    tile_n: int = 0,
) -> Projection:
    """:func:`manifpt_ext.project` over reals streamed in chunks that fit `memory_budget`.

    Args:
        fakes: Tensor[M, *S], on the CPU or CUDA (reals then stream from host memory to the device).
        reals: the N reals (N, *S) as a tensor, a numpy array or np.memmap, a path to a .npy file
            (read in chunks, never loaded whole), or an iterable of tensors/arrays (chunks, in order).
        memory_budget: bytes of reals held at once (two buffers are used for .npy files, to overlap
            reading with compute). Default: a quarter of free RAM / device memory, at most 1 GiB.
        progress: show a tqdm progress bar over the reals.

    Returns:
        Projection(artifact, index, distance) identical to one project() call on all the reals:
        index bitwise (global, lowest on ties), artifact bitwise.
    """
    if not isinstance(fakes, torch.Tensor):
        raise TypeError(f"manifpt.project_stream: fakes must be a torch.Tensor, got {type(fakes).__name__}")
    if fakes.dim() < 1:
        raise ValueError("manifpt.project_stream: fakes must have a leading sample dimension, got a 0-d tensor")
    if memory_budget is None:
        memory_budget = default_memory_budget(fakes.device)
    if not isinstance(memory_budget, int) or memory_budget <= 0:
        raise ValueError(f"manifpt.project_stream: memory_budget must be a positive number of bytes, got {memory_budget!r}")
    row_bytes = max(1, int(np.prod(fakes.shape[1:], dtype=np.int64)) * fakes.element_size())
    # .npy files use two buffers (read-ahead), hence half the budget per chunk there.
    rows = max(1, memory_budget // row_bytes // (2 if isinstance(reals, (str, os.PathLike)) else 1))
    chunks, total = _chunks(reals, rows, fakes.device)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="real", desc="project_stream")
    merge = _Merge(fakes)
    seen = 0
    for offset, chunk in chunks:
        if chunk.shape[0] == 0:
            continue
        try:
            merge.add(chunk, offset, tile_m, tile_n)
        except RuntimeError as e:  # the op counts rows within its chunk; the caller's reals start at row 0
            if "reals contains NaN or Inf" not in str(e):
                raise
            bad = int(torch.nonzero(~torch.isfinite(chunk.reshape(chunk.shape[0], -1)).all(dim=1))[0])
            raise RuntimeError(f"manifpt.project_stream: reals contains NaN or Inf (first at row {offset + bad})") from None
        seen = max(seen, offset + chunk.shape[0])
        if bar is not None:
            bar.update(chunk.shape[0])
    if bar is not None:
        bar.close()
    if seen == 0:
        raise ValueError("manifpt.project_stream: reals is empty (N = 0): there is no real sample to project onto")
    return merge.result()
