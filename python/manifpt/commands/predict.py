"""manifpt predict: the model each image comes from (or "unknown"), with results.json and predictions.csv."""
from __future__ import annotations

from pathlib import Path

from ._common import add_out, add_skip_bad, write_tables

NAME, HELP = "predict", "attribute images with a trained attributor"
RESUME = False
LOCK_OUT = True


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP)
    p.add_argument("--model", type=Path, required=True, help="model.pt written by `manifpt fit`")
    p.add_argument("images", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--data", default=None, help="GM folder of the reals, or gm-mini (default: the one it was trained on)")
    p.add_argument("--closed-set", action="store_true", help="always name a known generator (no 'unknown')")
    add_skip_bad(p)
    add_out(p, NAME)
    return p


def run(args) -> int:
    from ..experiments.steps import resolve_device, table
    from ..workflow import run_predict
    from ._common import resolve_data

    resolve_data(args)
    r = run_predict(args.model, args.images, args.out, device=resolve_device(args.device), data=args.data,
                    open_set=not args.closed_set, skip_bad=args.skip_bad)
    text = table(r["predictions"], [("file", "file"), ("predicted", "predicted"), ("nearest known", "nearest_known"),
                                    ("probability", lambda p: f"{p['probability']:.3f}"), ("copy of a real", "identical_to_a_real")])
    print(text)
    if r["skipped"]:
        print(f"\nleft out {len(r['skipped'])} unreadable image(s) (--skip-bad): " + ", ".join(r["skipped"][:5]))
    write_tables(args.out, [text], r)
    print(f"one row per image: {args.out}/predictions.csv")
    return 0
