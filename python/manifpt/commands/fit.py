"""manifpt fit: train an attributor on the artifacts of a GM folder, or of an artifact store on disk
(--artifacts, also under torchrun); writes model.pt for predict / evaluate."""
from __future__ import annotations

import os
from pathlib import Path

from ._common import (add_data, add_memory_budget, add_out, add_train, check_keep, check_positive, data_kwargs,
                      resolve_data, write_tables)

NAME, HELP = "fit", "train an attributor on the artifacts of a GM folder or of a store (torchrun-aware)"
RESUME = True
# Under torchrun rank 0 holds --out and writes into it; the other ranks write nothing there.
LOCK_OUT = os.environ.get("RANK", "0") == "0"


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP)
    add_data(p)
    add_train(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    p.add_argument("--patience", type=int, default=5, help="stop once validation accuracy has not improved for this many epochs")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt (same data, space and settings)")
    p.add_argument("--open-set-score", choices=("msp", "energy", "fingerprint"), default="energy",
                   help="score for flagging unknown generators: max softmax probability, energy, or the Mahalanobis "
                        "distance to per-class fingerprint statistics of the artifacts")
    p.add_argument("--keep", type=float, default=0.95, help="share of known validation images the threshold keeps")
    p.add_argument("--artifacts", type=Path, default=None, metavar="DIR",
                   help="train from the store `manifpt artifacts` wrote (read from disk in batches) instead of --data")
    p.add_argument("--workers", type=int, default=0, help="DataLoader processes reading batches of --artifacts ahead")
    add_memory_budget(p, "with --artifacts, batches in flight and the chunks of the statistics and scoring passes")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto (default): bf16 autocast on CUDA GPUs that support it, fp32 elsewhere")
    p.add_argument("--timeout", type=float, default=600.0, help="under torchrun: seconds before a stuck collective fails")
    add_out(p, NAME)
    return p


def run(args) -> int:
    from .. import distributed
    from ..artifact_store import parse_bytes
    from ..experiments.steps import pct, resolve_device

    check_positive(args, "size", "epochs", "batch_size", "patience")
    check_keep(args.keep)
    budget = parse_bytes(args.memory_budget)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.artifacts is None and world > 1:
        raise ValueError("under torchrun, fit trains from a store on disk: run `manifpt artifacts --out DIR` first, then "
                         "`torchrun ... -m manifpt.cli fit --artifacts DIR`")
    device, created = distributed.setup(resolve_device(args.device), args.timeout)
    try:
        if args.artifacts is not None:
            from ..scale_fit import fit_store

            r = fit_store(args.artifacts, args.out, arch=args.arch, epochs=args.epochs, seed=args.seed,
                          batch_size=args.batch_size, optimizer=args.optimizer, resume=args.resume, device=device,
                          open_set_score=args.open_set_score, keep=args.keep, workers=args.workers,
                          memory_budget=budget, precision=args.precision, patience=args.patience)
            if distributed.rank_world()[0] != 0:
                return 0
        else:
            from ..workflow import run_fit

            resolve_data(args)
            r = run_fit(args.data, args.space, args.out, arch=args.arch, epochs=args.epochs, seed=args.seed,
                        batch_size=args.batch_size, optimizer=args.optimizer, resume=args.resume,
                        open_set_score=args.open_set_score, keep=args.keep, precision=args.precision, patience=args.patience,
                        **data_kwargs(args, device))
    finally:
        distributed.teardown(created)
    c = r["calibration"]
    print(f"test accuracy ({r['space']}, {args.arch}): {pct(r['accuracy'])}% on {r['sizes']['test']} images; "
          f"calibration: T = {c['temperature']:.2f}, test ECE {c['ece_test_before']:.3f} -> {c['ece_test_after']:.3f}; "
          f"model: {args.out / 'model.pt'}")
    write_tables(args.out, [], r)
    return 0
