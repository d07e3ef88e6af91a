"""manifpt artifacts: the artifacts of every generated image of a GM folder, the FD ratio and triplet figures."""
from __future__ import annotations

from pathlib import Path

from ._common import add_data, add_memory_budget, add_out, check_positive, data_kwargs, resolve_data, write_tables

NAME, HELP = "artifacts", "artifacts of every generated image of a GM folder"
RESUME = False
LOCK_OUT = True


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP)
    add_data(p)
    add_memory_budget(p, "the artifacts are built chunk by chunk within it (reals and fakes streamed from disk)")
    p.add_argument("--from-project", type=Path, default=None, metavar="DIR",
                   help="adopt the output folder of `manifpt project` (also under torchrun) instead of --data")
    p.add_argument("--labels", type=Path, default=None, help="with --from-project: model of each fake (.npy of ints), "
                   "when its --fakes was not a GM folder")
    add_out(p, NAME)
    return p


def run(args) -> int:
    from ..experiments.steps import resolve_device, table
    from ..workflow import run_artifacts

    from ..artifact_store import parse_bytes

    check_positive(args, "size")
    budget = parse_bytes(args.memory_budget)
    if args.from_project is not None:
        from ..artifact_build import adopt_project

        store = adopt_project(args.from_project, args.out, labels_path=args.labels, memory_budget=budget)
        print(f"store of {store['rows']} artifacts ({len(store['models'])} models) from {args.from_project} -> {args.out}/")
        return 0
    if args.labels is not None:
        raise ValueError("--labels goes with --from-project")
    resolve_data(args)
    r = run_artifacts(args.data, args.space, args.out, memory_budget=budget, **data_kwargs(args, resolve_device(args.device)))
    text = table(r["models"], [("model", "model"), ("images", "images"), ("mean distance", lambda m: f"{m['mean_distance']:.4f}"),
                               ("copies of a real", "identical_to_a_real")])
    print(text)
    fdr = r["fdr"]
    print(f"\nFD ratio of the artifacts ({args.space}): "
          + (f"n/a ({fdr.get('reason', 'no spread within a model')})" if fdr["fdr"] is None else f"{fdr['fdr']:.2f}"))
    write_tables(args.out, [text], r)
    return 0
