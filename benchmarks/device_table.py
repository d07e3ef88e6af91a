"""The GPU timing table of benchmarks/device_check.sh: manifpt's CUDA projection (exact, tf32, bf16)
against torch.cdist + argmin and the mm-expansion + argmin (FAISS-GPU's design), with TFLOP/s against
the card's FP32 and TF32 cuBLAS rates measured in the same run, and project_freq against the
projection alone.

    python benchmarks/device_table.py --out DIR          # on the GPU machine
    python benchmarks/device_table.py --cpu --out DIR    # dry run on a CPU: tiny shapes, the CUDA
                                                         # kernels under the emulation
    python benchmarks/device_table.py --sanitize-case    # one small case per kernel (compute-sanitizer)

Writes DIR/device_table.md and DIR/device_table.json. FLOP counts are 2 M N D (one multiply-add per
element of every pair). Shapes too large to time whole inside the script's budget are timed on the
first M' fakes (column "M timed"); the rate is M' N D work over its time. Every timed method's index
is compared with the exact path's, and the exact path's with a float64 reference on 32 rows.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import manifpt_ext

GPU_SHAPES = [
    (1000, 10000, 64), (10000, 10000, 128), (4096, 16384, 2048), (2048, 8192, 12288),
    (100000, 100000, 128), (16384, 65536, 2048), (16384, 65536, 12288),
]
CPU_SHAPES = [(40, 300, 16), (70, 129, 65)]
FREQ_GPU = ((4096, 3, 64, 64), (16384, 3, 64, 64))
FREQ_CPU = ((6, 3, 8, 8), (50, 3, 8, 8))


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def time_min(fn, dev, repeats=2):
    """(best time of `repeats` calls after a warm-up call, the warm-up call's result)."""
    result = fn()
    _sync(dev)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(dev)
        best = min(best, time.perf_counter() - t)
    return best, result


def gemm_rates(dev):
    """cuBLAS FP32 (TF32 off) and TF32 TFLOP/s of a square matmul, measured now."""
    n = 8192 if dev.type == "cuda" else 512
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    rates = {}
    old = torch.backends.cuda.matmul.allow_tf32
    try:
        for name, tf32 in (("fp32", False), ("tf32", True)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            rates[name] = 2 * n**3 / time_min(lambda: a @ b, dev, repeats=3)[0] / 1e12
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return rates


def _chunks(m, n, budget_bytes=4 << 30):
    return max(1, min(m, budget_bytes // max(1, 4 * n)))


def cdist_argmin(x, y):
    step = _chunks(x.shape[0], y.shape[0])
    return torch.cat([torch.cdist(x[i : i + step], y).argmin(1) for i in range(0, x.shape[0], step)])


def mm_argmin(x, y):
    """FAISS-GPU's design: |y|^2 - 2 x.y from an FP32 GEMM (TF32 off), then argmin."""
    yy = (y * y).sum(1)
    step = _chunks(x.shape[0], y.shape[0])
    return torch.cat([(yy - 2 * x[i : i + step] @ y.T).argmin(1) for i in range(0, x.shape[0], step)])


def reference_rows(x, y, rows=32):
    """float64 direct-form argmin of the first `rows` fakes, in chunks of reals of ~1 GiB."""
    r = torch.arange(min(rows, x.shape[0]), device=x.device)
    step = max(1, (1 << 30) // (8 * len(r) * x.shape[1]))
    xr = x[r].double()[:, None, :]
    d = torch.cat([((xr - y[j : j + step].double()[None]) ** 2).sum(-1) for j in range(0, y.shape[0], step)], 1)
    return r, d.argmin(1)


def ours(dev, precision):
    if dev.type == "cuda":
        return lambda x, y: manifpt_ext.ops._project_cuda(x, y, precision=precision).index
    return lambda x, y: manifpt_ext.ops._project_cuda_emulated(x, y, precision=precision).index


def run_table(dev, shapes, flop_budget):
    rates = gemm_rates(dev)
    rows = []
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for m, n, d in shapes:
            g = torch.Generator(device=dev).manual_seed(0)
            y = torch.randn(n, d, device=dev, generator=g)
            mt = int(min(m, max(64, flop_budget // (2 * n * d))))
            x = torch.randn(mt, d, device=dev, generator=g)
            flop = 2.0 * mt * n * d
            exact = ours(dev, "exact")(x, y)
            r, want = reference_rows(x, y)
            row = {"M": m, "N": n, "D": d, "M_timed": mt, "exact_vs_float64": bool(torch.equal(exact[r], want))}
            methods = {
                "ours exact": ours(dev, "exact"),
                "ours tf32": ours(dev, "tf32"),
                "ours bf16": ours(dev, "bf16"),
                "cdist+argmin": cdist_argmin,
                "mm-expansion+argmin": mm_argmin,
            }
            for name, fn in methods.items():
                t, idx = time_min(lambda fn=fn: fn(x, y), dev)
                row[name] = {
                    "s": t,
                    "tflops": flop / t / 1e12,
                    "pct_fp32": 100 * flop / t / 1e12 / rates["fp32"],
                    "pct_tf32": 100 * flop / t / 1e12 / rates["tf32"],
                    "same_index_as_exact": float((idx == exact).float().mean()),
                }
                print(f"{m}x{n}x{d} (M timed {mt}) {name}: {t:.4f} s, {flop / t / 1e12:.2f} TFLOP/s", flush=True)
            rows.append(row)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return rates, rows


def run_freq(dev, fakes_shape, reals_shape, flop_budget):
    g = torch.Generator(device=dev).manual_seed(1)
    reals = torch.rand(reals_shape, device=dev, generator=g)
    d = math.prod(reals_shape[1:])
    mt = int(min(fakes_shape[0], max(64, flop_budget // (2 * reals_shape[0] * d))))
    fakes = torch.rand((mt, *fakes_shape[1:]), device=dev, generator=g)
    if dev.type == "cuda":
        t_freq, pf = time_min(lambda: manifpt_ext.project_freq(fakes, reals), dev)
        fs, rs = manifpt_ext.ops._freq_spectra(fakes, "logmag"), manifpt_ext.ops._freq_spectra(reals, "logmag")
        t_proj, pp = time_min(lambda: manifpt_ext.project(fs, rs), dev)
        same = bool(torch.equal(pf.index, pp.index))
    else:  # the CPU path of project_freq, and the emulated post-FFT kernel checked against it
        t_freq, _ = time_min(lambda: manifpt_ext.project_freq(fakes, reals), dev)
        fs, rs = manifpt_ext.freq_embed(fakes), manifpt_ext.freq_embed(reals)
        t_proj, _ = time_min(lambda: manifpt_ext.project(fs, rs), dev)
        half = torch.view_as_real(torch.fft.rfft2(fakes)).contiguous()
        same = bool(torch.allclose(manifpt_ext.ops._freq_post_emulated(half, fakes.shape[-1], "logmag"), fs, rtol=1e-4, atol=1e-4))
    return {"fakes": list(fakes_shape), "reals": list(reals_shape), "M_timed": mt, "project_freq_s": t_freq, "project_s": t_proj,
            "ratio": t_freq / t_proj, "consistent": same}


def markdown(dev_name, rates, rows, freq):
    out = [f"Device: {dev_name}; cuBLAS square matmul measured in this run: FP32 {rates['fp32']:.1f} TFLOP/s, "
           f"TF32 {rates['tf32']:.1f} TFLOP/s.", "",
           "| M x N x D | M timed | method | s | TFLOP/s | % FP32 | % TF32 | same index as exact |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for name in ("ours exact", "ours tf32", "ours bf16", "cdist+argmin", "mm-expansion+argmin"):
            r = row[name]
            out.append(f"| {row['M']} x {row['N']} x {row['D']} | {row['M_timed']} | {name} | {r['s']:.4f} | {r['tflops']:.2f} | "
                       f"{r['pct_fp32']:.0f} | {r['pct_tf32']:.0f} | {100 * r['same_index_as_exact']:.2f}% |")
        out.append(f"| | | exact = float64 reference on 32 rows: {row['exact_vs_float64']} | | | | | |")
    out += ["", f"project_freq {freq['fakes']} (first {freq['M_timed']} fakes) onto {freq['reals']}: {freq['project_freq_s']:.4f} s, "
            f"projection of the spectra alone {freq['project_s']:.4f} s, ratio {freq['ratio']:.2f} (consistent: {freq['consistent']})"]
    return "\n".join(out) + "\n"


def sanitize_case():
    """One small case per CUDA kernel, for compute-sanitizer (memcheck, racecheck)."""
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    x, y = torch.randn(70, 33, device=dev, generator=g), torch.randn(150, 33, device=dev, generator=g)
    for precision in ("exact", "tf32", "bf16"):
        for splits in (1, 0):
            manifpt_ext.ops._project_cuda(x, y, precision=precision, splits=splits)
    manifpt_ext.ops._project_cuda(x.half(), y.half(), variant="direct")
    manifpt_ext.project_freq(torch.rand(3, 3, 8, 6, device=dev), torch.rand(5, 3, 8, 6, device=dev))
    torch.cuda.synchronize()
    print("sanitize case: ran")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("."))
    ap.add_argument("--cpu", action="store_true", help="dry run on the CPU: tiny shapes, the CUDA kernels under the emulation")
    ap.add_argument("--sanitize-case", action="store_true")
    ap.add_argument("--flop-budget", type=float, default=None, help="work per timed call (default 1.5e13 on a GPU, 2e7 on a CPU)")
    a = ap.parse_args()
    if a.sanitize_case:
        return sanitize_case()
    dev = torch.device("cpu" if a.cpu else "cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("device_table.py: no GPU (use --cpu for a dry run)")
    budget = a.flop_budget or (1.5e13 if dev.type == "cuda" else 2e7)
    dev_name = torch.cuda.get_device_name() if dev.type == "cuda" else "CPU (dry run: emulated CUDA kernels, not GPU numbers)"
    rates, rows = run_table(dev, CPU_SHAPES if a.cpu else GPU_SHAPES, budget)
    freq = run_freq(dev, *(FREQ_CPU if a.cpu else FREQ_GPU), budget)
    a.out.mkdir(parents=True, exist_ok=True)
    md = markdown(dev_name, rates, rows, freq)
    (a.out / "device_table.md").write_text(md)
    (a.out / "device_table.json").write_text(json.dumps({"device": dev_name, "gemm_tflops": rates, "rows": rows, "freq": freq}, indent=1))
    print(md)


if __name__ == "__main__":
    main()
