"""manifpt fit: train an attributor on the artifacts of a GM folder (model.pt for predict / evaluate)."""
from __future__ import annotations

from ._common import add_data, add_out, add_train, check_keep, check_positive, data_kwargs, resolve_data, write_tables

NAME, HELP = "fit", "train an attributor on the artifacts of a GM folder"
RESUME = True
LOCK_OUT = True


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP)
    add_data(p)
    add_train(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt (same data, space and settings)")
    p.add_argument("--open-set-score", choices=("msp", "energy", "fingerprint"), default="energy",
                   help="score for flagging unknown generators: max softmax probability, energy, or the Mahalanobis "
                        "distance to per-class fingerprint statistics of the artifacts")
    p.add_argument("--keep", type=float, default=0.95, help="share of known validation images the threshold keeps")
    add_out(p, NAME)
    return p


def run(args) -> int:
    from ..experiments.steps import pct, resolve_device
    from ..workflow import run_fit

    check_positive(args, "size", "epochs", "batch_size")
    check_keep(args.keep)
    resolve_data(args)
    r = run_fit(args.data, args.space, args.out, arch=args.arch, epochs=args.epochs, seed=args.seed,
                batch_size=args.batch_size, optimizer=args.optimizer, resume=args.resume,
                open_set_score=args.open_set_score, keep=args.keep, **data_kwargs(args, resolve_device(args.device)))
    c = r["calibration"]
    print(f"test accuracy ({args.space}, {args.arch}): {pct(r['accuracy'])}% on {r['sizes']['test']} images; "
          f"calibration: T = {c['temperature']:.2f}, test ECE {c['ece_test_before']:.3f} -> {c['ece_test_after']:.3f}; "
          f"model: {args.out / 'model.pt'}")
    write_tables(args.out, [], r)
    return 0
