"""manifpt demo: the paper's three studies on the embedded GM-Mini (quick preset; --full)."""
from __future__ import annotations

from pathlib import Path

NAME, HELP = "demo", "the paper's three studies on the embedded GM-Mini (quick preset; --full)"
RESUME = True
LOCK_OUT = True


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP)
    p.add_argument("--full", action="store_true", help="the complete settings (all baselines, 3 seeds x 30 epochs)")
    p.add_argument("--data", default="gm-mini", help="GM folder with models.csv, or gm-mini (default)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--out", type=Path, default=Path("runs") / "demo", help="folder for the studies' results and figures")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo in OUT (same preset): finished "
                   "studies are kept, model-type continues from its last finished seed and epoch")
    return p


def run(args) -> int:
    from ..demo import run_demo
    from ..experiments.steps import resolve_device

    r = run_demo(args.out, full=args.full, data=args.data, device=resolve_device(args.device), resume=args.resume)
    for study, text in r["tables"].items():
        print(f"\n{study} ({r['seconds'][study]:.0f} s)\n{text}")
    print(f"\nwrote {args.out}/summary.md, summary.json; figures:\n  " + "\n  ".join(r["figures"]))
    return 0
