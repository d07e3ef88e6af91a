"""Side-by-side measurement of manifpt_ext.project against FAISS IndexFlatL2 and torch.

Shared by the pytest-benchmark suite (benchmarks/) and `manifpt demo`. Every comparison checks
correctness before it times anything, and every ratio is taken between numbers measured in the same
process (these machines are noisy: absolute times move, ratios much less).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import torch

import manifpt_ext

# (M fakes, N reals, D dims). "full": the shapes of benchmarks/RESULTS.md, from small D (FAISS is
# memory-bound there) to 12288 = 64 x 64 x 3 images (compute-bound), plus GM-Mini's own shape (7500
# fakes against 1600 reals of 32 x 32 x 3: D is a power of two times 3, where cache-set aliasing shows)
# and its neighbour D = 3000 with more reals.
SHAPES = {
    "full": [(1000, 10000, 64), (10000, 10000, 128), (4096, 16384, 2048), (2048, 8192, 12288), (7500, 1600, 3072),
             (2000, 20000, 3000)],
    "demo": [(1000, 10000, 64), (10000, 10000, 128), (1024, 8192, 2048), (512, 4096, 12288)],
    "small": [(200, 2000, 64), (1000, 1000, 128), (256, 2048, 512), (128, 512, 3072)],
}


def make_data(m: int, n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, d, generator=g), torch.randn(n, d, generator=g)


def time_interleaved(fns: dict, repeats: int = 3) -> dict[str, float]:
    """Best of `repeats` wall-clock runs of each function, taken in turns (a, b, c, a, b, c, ...): on a
    shared machine whose speed drifts by 10-20% over a minute, a slow spell then costs every method
    alike instead of one, so their ratios hold."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def time_min(fn, repeats: int = 3) -> float:
    """Best of `repeats` wall-clock runs (the minimum is the least noisy estimate on shared CPUs)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def gflops(m: int, n: int, d: int, seconds: float) -> float:
    return 2.0 * m * n * d / seconds / 1e9


def sgemm_gflops(size: int = 2048, repeats: int = 3) -> dict[str, float]:
    """This machine's float32 GEMM rate, measured now: torch.mm (MKL here) and numpy (OpenBLAS here)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    na, nb = a.numpy(), b.numpy()
    a @ b, na @ nb
    return {
        "torch_mm": gflops(size, size, size, time_min(lambda: a @ b, repeats)),
        "numpy": gflops(size, size, size, time_min(lambda: na @ nb, repeats)),
    }


class FaissFlat:
    """FAISS IndexFlatL2 (k=1) plus the artifact gather; `add` happens here, outside any timing."""

    def __init__(self, reals: torch.Tensor):
        import faiss

        self.reals = reals
        self.index = faiss.IndexFlatL2(reals.shape[1])
        self.index.add(reals.numpy())

    def __call__(self, fakes: torch.Tensor):
        _, ind = self.index.search(fakes.numpy(), 1)
        index = torch.from_numpy(ind[:, 0])
        return fakes - self.reals[index], index


def cdist_argmin(fakes: torch.Tensor, reals: torch.Tensor):
    """torch.cdist + argmin + gather: materialises the M x N matrix (the naive approach)."""
    index = torch.cdist(fakes, reals).argmin(dim=1)
    return fakes - reals[index], index


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def check_exact(fakes: torch.Tensor, reals: torch.Tensor, index: torch.Tensor, rows: int = 64) -> None:
    """Raises unless `index` is the float64 argmin on a sample of rows (the float64 reference is slow)."""
    sel = torch.linspace(0, fakes.shape[0] - 1, min(rows, fakes.shape[0])).long()
    ref = manifpt_ext.project_reference(fakes[sel], reals)
    bad = (ref.index != index[sel]).sum().item()
    if bad:
        raise AssertionError(f"manifpt_ext.project disagrees with the float64 reference on {bad}/{len(sel)} rows")


@dataclass
class Row:
    m: int
    n: int
    d: int
    cpu_path: str  # MANIFPT_CPU_ISA during the run ("auto": the best this CPU has)
    ours_s: float
    ours_gflops: float
    faiss_s: float | None
    faiss_gflops: float | None
    ratio_vs_faiss: float | None  # faiss time / our time (> 1: we are faster)
    faiss_agreement: float | None  # fraction of rows where FAISS returns our (exact) index
    cdist_s: float | None
    ratio_vs_cdist: float | None
    sgemm_gflops: float | None = None  # the better of torch.mm and numpy on this shape's x @ y.T, same turns

    def pct_of_sgemm(self, sgemm: dict[str, float]) -> float:
        """Our rate over the best GEMM rate of the run: the better of this shape's own GEMM and the
        square probe, so neither a shape that suits the BLAS nor one that does not flatters us."""
        return 100 * self.ours_gflops / max([*sgemm.values(), self.sgemm_gflops or 0.0])


class cpu_path_env:
    """Runs a block with MANIFPT_CPU_ISA set (the op reads it on every call), then restores it."""

    def __init__(self, path: str):
        self.path, self.saved = path, None

    def __enter__(self):
        self.saved = os.environ.get("MANIFPT_CPU_ISA")
        os.environ["MANIFPT_CPU_ISA"] = self.path
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            os.environ.pop("MANIFPT_CPU_ISA", None)
        else:
            os.environ["MANIFPT_CPU_ISA"] = self.saved


def compare(m: int, n: int, d: int, repeats: int = 3, with_cdist: bool = True, cpu_path: str | None = None) -> Row:
    """Ours on `cpu_path` (default: MANIFPT_CPU_ISA as set, else auto) vs FAISS and cdist, this process."""
    path = cpu_path or os.environ.get("MANIFPT_CPU_ISA", "auto")
    x, y = make_data(m, n, d)
    xn, yn = x.numpy(), y.numpy()
    with cpu_path_env(path):
        ours = manifpt_ext.project(x, y)
        check_exact(x, y, ours.index)
        fns = {"ours": lambda: manifpt_ext.project(x, y), "torch_mm": lambda: torch.mm(x, y.T), "numpy": lambda: xn @ yn.T}
        agree = t_cdist = None
        if faiss_available():
            flat = FaissFlat(y)
            agree = (flat(x)[1] == ours.index).float().mean().item()
            fns["faiss"] = lambda: flat(x)
        t = time_interleaved(fns, repeats)
    t_ours, t_faiss = t["ours"], t.get("faiss")
    if with_cdist and m * n * 4 <= 2 * 2**30:  # skip when the matrix alone would take > 2 GiB
        t_cdist = time_min(lambda: cdist_argmin(x, y), repeats)
    return Row(
        m, n, d, path, t_ours, gflops(m, n, d, t_ours), t_faiss, t_faiss and gflops(m, n, d, t_faiss),
        t_faiss and t_faiss / t_ours, agree, t_cdist, t_cdist and t_cdist / t_ours,
        gflops(m, n, d, min(t["torch_mm"], t["numpy"])),
    )


_PROBE = """
import json, time, numpy as np, torch, manifpt_ext
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))
{setup}
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak-RSS high-water mark (Linux)
before = status("VmRSS")
t = time.perf_counter()
result = {call}
print(json.dumps([time.perf_counter() - t, status("VmHWM") - before]))
"""


def fresh_process_peak(setup: str, call: str) -> tuple[float, float]:
    """Runs `setup`, then times `call` in a fresh Python process: (seconds, MiB the peak RSS grew during
    the call above the RSS before it). The inputs made by `setup` are not counted."""
    # cwd elsewhere: from the repository root `import manifpt_ext` would find the source folder.
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(setup=setup, call=call)],
        check=True, capture_output=True, text=True, cwd=tempfile.gettempdir(),
    ).stdout
    seconds, growth = json.loads(out.strip().splitlines()[-1])
    return seconds, growth / 2.0**20


def peak_rss_of_projection(m: int, n: int, d: int) -> dict[str, float]:
    """Peak RSS growth of one float32 projection against its outputs (MiB); what it exceeds the outputs
    by is the kernel's working memory (tiles, candidate lists)."""
    setup = f"x = torch.randn({m}, {d}); y = torch.randn({n}, {d}); manifpt_ext.project(x[:2], y[:16])"
    _, growth = fresh_process_peak(setup, "manifpt_ext.project(x, y)")
    mib = 2.0**20
    outputs = (m * d * 4 + m * 8 + m * 4) / mib
    return {
        "inputs_mib": (m + n) * d * 4 / mib,
        "outputs_mib": outputs,
        "growth_mib": growth,
        "beyond_outputs_mib": growth - outputs,
        "cdist_matrix_mib": m * n * 4 / mib,
    }


def _cpuinfo_fields() -> dict[str, str]:
    """model name, cpu family, model and flags of the first CPU in /proc/cpuinfo (Linux; else empty)."""
    out: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def machine_info(cpu_path: str | None = None) -> dict[str, str | int]:
    """The CPU (model, family/model, the vector ISAs it has), the code path and blocking the op takes on
    it (read from the op itself, cache sizes included), threads, torch and the date."""
    fields = _cpuinfo_fields()
    flags = set(fields.get("flags", "").split())
    with cpu_path_env(cpu_path or os.environ.get("MANIFPT_CPU_ISA", "auto")) as env:
        op = manifpt_ext.cpu_info(4096, 16384, 2048)
        path = env.path
    return {
        "cpu": fields.get("model name", "unknown"),
        "cpu_family_model": f"{fields.get('cpu family', '?')}/{fields.get('model', '?')}",
        "isa": " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags) or "none of avx2/avx512",
        "cpu_path": path,
        **{f"op_{k}": v for k, v in op.items()},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def machine_lines(info: dict, sgemm: dict[str, float] | None = None) -> list[str]:
    """machine_info (and the sgemm rate) as the lines `manifpt bench` and the benchmark suite print."""
    kib = lambda b: f"{b // 1024} KiB" if b < 2**20 else f"{b // 2**20} MiB"  # noqa: E731
    lines = [
        f"CPU: {info['cpu']} (family/model {info['cpu_family_model']}; {info['isa']}), {info['threads']} threads, "
        f"torch {info['torch']}",
        f"ISA path: MANIFPT_CPU_ISA={info['cpu_path']} -> GEMM {info['op_gemm']}, scan {info['op_scan']}; caches "
        f"L1d {kib(info['op_l1d'])}, L2 {kib(info['op_l2'])}, L3 {kib(info['op_l3'])}"
        f"{'' if info['op_caches_from_os'] else ' (defaults: the OS reported none)'}; blocking at (4096, 16384, 2048): "
        f"MR {info['op_mr']}, KC {info['op_kc']}, MC {info['op_mc']}, NC {info['op_nc']}, "
        f"prefetch {'on' if info['op_prefetch'] else 'off'}",
    ]
    if sgemm:
        lines.append("sgemm rate measured now: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in sgemm.items()))
    return lines


def markdown_table(rows: list[Row], sgemm: dict[str, float]) -> str:
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lines = [
        "| M | N | D | path | ours s | ours GFLOP/s | sgemm GFLOP/s (this shape) | % of sgemm | FAISS s | FAISS GFLOP/s | ours vs FAISS | FAISS exact rows | cdist+argmin s | ours vs cdist |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.m} | {r.n} | {r.d} | {r.cpu_path} | {r.ours_s:.4f} | {r.ours_gflops:.0f} | {fmt(r.sgemm_gflops, '.0f')} | "
            f"{r.pct_of_sgemm(sgemm):.0f}% | "
            f"{fmt(r.faiss_s, '.4f')} | {fmt(r.faiss_gflops, '.0f')} | {fmt(r.ratio_vs_faiss, '.2f')}x | "
            f"{fmt(r.faiss_agreement and 100 * r.faiss_agreement, '.1f')}% | {fmt(r.cdist_s, '.4f')} | "
            f"{fmt(r.ratio_vs_cdist, '.2f')}x |"
        )
    return "\n".join(lines)


def rows_to_json(rows: list[Row], sgemm: dict[str, float], extra: dict | None = None) -> dict:
    return {"machine": machine_info(rows[0].cpu_path if rows else None), "sgemm_gflops": sgemm, "rows": [asdict(r) for r in rows], **(extra or {})}


def stream_rss_probe(path: str, m: int, d: int, budget: int) -> dict[str, float]:
    """Time and peak-RSS growth (MiB) of project_stream(fakes (m, d), .npy file) in a fresh process."""
    setup = (f"x = torch.from_numpy(np.random.default_rng(1).standard_normal(({m}, {d}), dtype=np.float32)); "
             "manifpt_ext.project(x[:2], x[:16])")
    seconds, growth = fresh_process_peak(setup, f"manifpt_ext.project_stream(x, {str(path)!r}, memory_budget={budget})")
    outputs = (m * d * 4 + m * 12) / 2.0**20
    return {"seconds": seconds, "growth_mib": growth, "outputs_mib": outputs, "beyond_outputs_mib": growth - outputs}


def shared_offset_case(m: int = 2000, n: int = 4000, d: int = 256) -> dict[str, float | None]:
    """The case that motivates the exact re-rank: vectors sharing a large offset (offset of scale 300 +
    noise 0.05, like the pixels of similar images). The share of rows with the exact nearest real, for
    manifpt and FAISS (None without faiss)."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(d, generator=g) * 300
    x = base + 0.05 * torch.randn(m, d, generator=g)
    y = base + 0.05 * torch.randn(n, d, generator=g)
    exact = manifpt_ext.project_reference(x, y).index
    ours = (manifpt_ext.project(x, y).index == exact).float().mean().item()
    theirs = (FaissFlat(y)(x)[1] == exact).float().mean().item() if faiss_available() else None
    return {"manifpt": ours, "faiss": theirs, "shape": [m, n, d]}


# The speed targets of the full preset, each a ratio measured in one run (benchmarks/RESULTS.md).
TARGET_VS_FAISS = 1.1  # every shape
TARGET_VS_FAISS_SMALL_D = 2.5  # at (1000, 10000, 64)
TARGET_PCT_OF_SGEMM = 90.0  # wherever D >= 512
TARGET_MEMORY_MIB = 256.0  # working memory at (20000, 200000, 64)


def check_targets(rows: list[Row], sgemm: dict[str, float], beyond_outputs_mib: float | None = None) -> list[dict]:
    """One line per target and shape: {"target", "shape", "path", "want", "got", "met"}."""
    out = []

    def add(target, r, want, got):
        out.append({"target": target, "shape": [r.m, r.n, r.d] if r else None, "path": r.cpu_path if r else None,
                    "want": want, "got": got, "met": got is not None and got >= want})

    for r in rows:
        if r.ratio_vs_faiss is not None:
            add("vs FAISS", r, TARGET_VS_FAISS, r.ratio_vs_faiss)
            if (r.m, r.n, r.d) == (1000, 10000, 64):
                add("vs FAISS at (1000, 10000, 64)", r, TARGET_VS_FAISS_SMALL_D, r.ratio_vs_faiss)
        if r.d >= 512:
            add("% of sgemm (D >= 512)", r, TARGET_PCT_OF_SGEMM, r.pct_of_sgemm(sgemm))
    if beyond_outputs_mib is not None:
        out.append({"target": "working memory MiB at (20000, 200000, 64), at most", "shape": [20000, 200000, 64],
                    "path": None, "want": TARGET_MEMORY_MIB, "got": beyond_outputs_mib,
                    "met": beyond_outputs_mib <= TARGET_MEMORY_MIB})
    return out


def targets_table(targets: list[dict]) -> str:
    lines = ["| target | shape | path | want | measured | met |", "|---|---|---|---|---|---|"]
    for t in targets:
        shape = "-" if t["shape"] is None else "(" + ", ".join(map(str, t["shape"])) + ")"
        lines.append(f"| {t['target']} | {shape} | {t['path'] or '-'} | {t['want']:g} | {t['got']:.2f} | "
                     f"{'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)
