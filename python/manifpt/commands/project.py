"""manifpt project: nearest real, distance and artifact of every fake, from .npy arrays or image folders;
under torchrun too (reals sharded over ranks, streamed from disk; see project_run.py and docs/scale.md)."""
from __future__ import annotations

import os
from pathlib import Path

from .. import spaces

NAME, HELP = "project", "artifacts of fakes against reals: .npy arrays or image folders (torchrun-aware)"
RESUME = False
LOCK_OUT = False  # project_run holds --out itself: rank 0 takes it for every rank of a torchrun job


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP)
    p.add_argument("--fakes", type=Path, default=None, help=".npy array (M, ...), folder of generated images, or a GM folder")
    p.add_argument("--reals", type=Path, default=None, help=".npy array (N, ...) or folder of real images")
    p.add_argument("--data", default="gm-mini", help="without --fakes/--reals: the models' images of this GM folder "
                   "against its real/ (default gm-mini)")
    p.add_argument("--space", choices=spaces.names(), default="rgb", help="embedding for image folders: " + spaces.help_text())
    p.add_argument("--size", type=int, default=None, help="bring images to SIZE x SIZE (shorter side + centre crop)")
    p.add_argument("--weights", default=None, help="local weights file for --space sl/ssl (never downloaded)")
    p.add_argument("--out", type=Path, default=Path("runs") / "project", help="folder for artifacts.npy, index.npy, distance.npy")
    p.add_argument("--batch", type=int, default=4096, help="fakes per block (default 4096)")
    p.add_argument("--memory-budget-mb", type=int, default=None, help="MiB of reals held at once per rank")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before a stuck collective fails")
    return p


def run(args) -> int:
    from ..project_run import run as project_run
    from ._common import check_positive

    check_positive(args, "batch", "memory_budget_mb", "size")
    if (args.fakes is None) != (args.reals is None):
        raise ValueError("give both --fakes and --reals, or neither (then --data: its models' images against its real/)")
    if args.fakes is None:
        from ..data import gm_mini

        root = gm_mini.resolve(args.data)
        args.fakes, args.reals = root, root / "real"
    budget = None if args.memory_budget_mb is None else args.memory_budget_mb << 20
    manifest = project_run(args.fakes, args.reals, args.out, space=args.space, size=args.size, weights=args.weights,
                           batch=args.batch, memory_budget=budget, timeout_s=args.timeout)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"projected {manifest['shape']['fakes'][0]} fakes onto {manifest['shape']['reals'][0]} reals on "
              f"{manifest['world_size']} rank(s) in {manifest['seconds']:.2f}s -> {args.out}/")
    return 0
