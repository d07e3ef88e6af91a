"""manifpt artifacts: the artifacts of every generated image of a GM folder, the FD ratio and triplet figures."""
from __future__ import annotations

from ._common import add_data, add_out, check_positive, data_kwargs, resolve_data, write_tables

NAME, HELP = "artifacts", "artifacts of every generated image of a GM folder"
RESUME = False
LOCK_OUT = True


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP)
    add_data(p)
    add_out(p, NAME)
    return p


def run(args) -> int:
    from ..experiments.steps import resolve_device, table
    from ..workflow import run_artifacts

    check_positive(args, "size")
    resolve_data(args)
    r = run_artifacts(args.data, args.space, args.out, **data_kwargs(args, resolve_device(args.device)))
    text = table(r["models"], [("model", "model"), ("images", "images"), ("mean distance", lambda m: f"{m['mean_distance']:.4f}"),
                               ("copies of a real", "identical_to_a_real")])
    print(text)
    fdr = r["fdr"]
    print(f"\nFD ratio of the artifacts ({args.space}): "
          + (f"n/a ({fdr.get('reason', 'no spread within a model')})" if fdr["fdr"] is None else f"{fdr['fdr']:.2f}"))
    write_tables(args.out, [text], r)
    return 0
