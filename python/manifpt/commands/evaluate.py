"""manifpt evaluate: accuracy and confusion matrix of a trained attributor on a GM folder, or on an
artifact store on disk (--artifacts, read in chunks)."""
from __future__ import annotations

from pathlib import Path

from ._common import add_memory_budget, add_out, add_skip_bad, resolve_data, write_tables

NAME, HELP = "evaluate", "accuracy of a trained attributor on a GM folder or a store"
RESUME = False
LOCK_OUT = True


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP)
    p.add_argument("--model", type=Path, required=True, help="model.pt written by `manifpt fit`")
    p.add_argument("--data", default="gm-mini", help="GM folder ROOT/real/** + ROOT/<model>/**, or gm-mini (the default)")
    p.add_argument("--artifacts", type=Path, default=None, metavar="DIR", help="score the store `manifpt artifacts` wrote")
    add_memory_budget(p, "with --artifacts, the chunks scored at once")
    add_skip_bad(p)
    add_out(p, NAME)
    return p


def run(args) -> int:
    from ..artifact_store import parse_bytes
    from ..experiments.steps import pct, resolve_device

    budget = parse_bytes(args.memory_budget)
    if args.artifacts is not None:
        from ..scale_fit import evaluate_store

        r = evaluate_store(args.model, args.artifacts, args.out, device=resolve_device(args.device), memory_budget=budget)
    else:
        from ..workflow import run_evaluate

        resolve_data(args)
        r = run_evaluate(args.model, args.data, args.out, device=resolve_device(args.device), skip_bad=args.skip_bad)
    print(f"accuracy: {pct(r['accuracy'])}%")
    write_tables(args.out, [], r)
    return 0
