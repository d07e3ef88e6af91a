"""manifpt bench: exactness and speed of the projection op against FAISS and torch (a table, JSON, PNG)."""
from __future__ import annotations

from pathlib import Path

NAME, HELP = "bench", "projection op vs FAISS and torch: exactness and speed table"
RESUME = False
LOCK_OUT = True


def add_parser(sub):
    from ..bench import SHAPES

    p = sub.add_parser(NAME, help=HELP)
    p.add_argument("--preset", choices=sorted(SHAPES), default="full", help="shapes (demo: a one-minute table)")
    p.add_argument("--out", type=Path, default=Path("runs") / "bench", help="folder for bench.json/.md/.png")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per method (the best is kept)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS run on (20000, 200000, 64)")
    p.add_argument("--cpu-paths", default="auto",
                   help="comma-separated MANIFPT_CPU_ISA values to time side by side in this one process "
                        "(auto, a packed-panel GEMM such as avx512 or avx2, blas, portable: manifpt_ext.cpu_paths() "
                        "lists this build's); default auto, the best this CPU has")
    return p


def _paths(value: str) -> list[str]:
    import manifpt_ext

    known = manifpt_ext.cpu_paths()
    paths = [p.strip() for p in value.split(",") if p.strip()]
    bad = [p for p in paths if p not in known]
    if not paths or bad:
        raise ValueError(f"--cpu-paths: expected a comma-separated list of {', '.join(known)}, got {value!r}")
    return paths


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from .. import __version__, bench, viz
    from ..io import atomic_write_json, atomic_write_text
    from ._common import check_positive

    check_positive(args, "repeats")
    paths = _paths(args.cpu_paths)
    print(f"manifpt {__version__}: projection op, preset '{args.preset}', {torch.get_num_threads()} threads")
    sgemm = bench.sgemm_gflops()
    for path in paths:
        print("\n".join(bench.machine_lines(bench.machine_info(path))))
    print(bench.machine_lines(bench.machine_info(paths[0]), sgemm)[-1])
    jobs = [(m, n, d, path) for m, n, d in bench.SHAPES[args.preset] for path in paths]
    rows = [bench.compare(m, n, d, repeats=args.repeats, cpu_path=path) for m, n, d, path in tqdm(jobs, desc="shapes", unit="run")]
    offset = bench.shared_offset_case()
    table = bench.markdown_table(rows, sgemm)
    print(f"\n{table}\n")
    print(f"Shared-offset case ({' x '.join(map(str, offset['shape']))}, offset 300, noise 0.05), rows with the exact "
          f"nearest real: manifpt {100 * offset['manifpt']:.1f}%"
          + (f", FAISS {100 * offset['faiss']:.1f}%" if offset["faiss"] is not None else ""))
    extra = {"shared_offset_exact_rows": offset, "cpu_paths": paths}
    beyond = None
    if not args.no_memory and args.preset == "full":
        m, n, d = 20000, 200000, 64
        mem = bench.peak_rss_of_projection(m, n, d)
        extra["memory"] = {"shape": [m, n, d], **mem}
        beyond = mem["beyond_outputs_mib"]
        print(f"Memory, ({m}, {n}, {d}) in a fresh process: peak RSS grew {mem['growth_mib']:.0f} MiB for "
              f"{mem['outputs_mib']:.0f} MiB of outputs, i.e. {mem['beyond_outputs_mib']:.0f} MiB beyond inputs + outputs "
              f"(a float32 distance matrix would be {mem['cdist_matrix_mib']:.0f} MiB)")
    if args.preset == "full":
        targets = bench.check_targets(rows, sgemm, beyond)
        extra["targets"] = targets
        print(f"\nTargets (ratios from this run):\n{bench.targets_table(targets)}")
    atomic_write_json(args.out / "bench.json", bench.rows_to_json(rows, sgemm, extra))
    atomic_write_text(args.out / "bench.md", table + "\n")
    viz.bench_figure(rows, sgemm, args.out / "bench.png")
    print(f"\nwrote {args.out / 'bench.json'}, {args.out / 'bench.md'}, {args.out / 'bench.png'}")
    return 0 if offset["manifpt"] == 1.0 else 1
