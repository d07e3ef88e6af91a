"""manifpt experiment STUDY: the studies of experiments/ from the command line; each prints its table and
writes results.json, results.md and its figures into --out."""
from __future__ import annotations

from ._common import (add_data, add_memory_budget, add_out, add_train, check_keep, check_positive, data_kwargs,
                      parse_baseline_args, parse_baselines, parse_spaces, parse_where, resolve_data, write_tables)

NAME, HELP = "experiment", "the paper's experiments and those beyond it"
LOCK_OUT = True
RESUME = False  # model-type: see resumable()
SPACES_OR_NONE = "comma-separated: rgb,freq,sl,ssl (or 'none')"


def resumable(args) -> bool:
    return getattr(args, "experiment", None) in ("model-type", "wild")


def _study(esub, name: str, help: str, spaces_help: str = "comma-separated: rgb,freq,sl,ssl"):
    e = esub.add_parser(name, help=help)
    add_data(e, space=False)
    e.add_argument("--spaces", default="rgb,freq", help=spaces_help)
    add_out(e, name)
    return e


def _baseline_args(e) -> None:
    e.add_argument("--baselines", default="none",
                   help="comma-separated baselines (mccloskey18,nataraj19,durall20,dzanic20,wang20,marra18,marra19,yu19,"
                        "npr,fsd), 'all' or 'none' (default)")
    e.add_argument("--baseline-preset", choices=("cpu", "paper"), default="cpu",
                   help="cpu: the baselines' networks sized for small images on a CPU; paper: each paper's settings")


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP)
    esub = p.add_subparsers(dest="experiment", required=True)
    e = _study(esub, "model-type", "Table 1: model-type attribution, accuracy mean +- std over seeds and FDR", SPACES_OR_NONE)
    _baseline_args(e)
    e.add_argument("--baseline-arg", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="override one constructor argument of a baseline over its preset, e.g. yu19.lr=1e-4 or "
                        "nataraj19.levels=128 (repeatable; docs/baselines.md lists them)")
    e.add_argument("--seeds", type=int, default=3)
    e.add_argument("--where", default=None, help="COLUMN=VALUE[,...]: only the models whose models.csv row matches "
                   "(e.g. training_set=photo: models of one training set, as in the paper)")
    e.add_argument("--pixel-control", action="store_true", help="add a row of the same attributor, splits and seeds "
                   "trained on the images instead of their artifacts (what the subtraction adds)")
    e.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT/progress.json "
                   "(same settings): finished rows and seeds are kept, a cut seed continues from its last epoch")
    add_memory_budget(e, "a set too large for memory: per space an artifact store in OUT/stores, built and trained "
                      "from in chunks (ManiFPT rows only; docs/scale.md)")
    add_train(e)
    e = _study(esub, "training-data", "Table 5: predict the training set of models of one type")
    e.add_argument("--type-column", default="type", help="models.csv column naming the model type")
    e.add_argument("--target-column", default="training_set", help="models.csv column naming the training set")
    e.add_argument("--seeds", type=int, default=3)
    add_train(e)
    e = _study(esub, "layer-type", "Table 6: NMI of artifact clusters against each design factor")
    e.add_argument("--factors", default=None, help="comma-separated models.csv columns (default: all)")
    e.add_argument("--components", type=int, default=None, metavar="K",
                   help="cluster the artifacts' top K principal components instead of every dimension (faster)")
    for name, help in (("robustness", "accuracy under JPEG, rescaling, blur, noise and crops of the test images"),
                       ("open-set", "leave-one-model-out: AUROC of known vs unknown generators, closed-set accuracy")):
        e = _study(esub, name, help, SPACES_OR_NONE)
        _baseline_args(e)
        e.add_argument("--seed", type=int, default=0)
        add_train(e)
        if name == "robustness":
            e.add_argument("--augment", action="store_true", help="train on clean + one randomly corrupted copy")
        else:
            e.add_argument("--score", choices=("msp", "energy", "fingerprint"), default="energy")
            e.add_argument("--keep", type=float, default=0.95, help="share of known validation images the threshold keeps")
    _wild_parser(esub)
    return p


def _wild_parser(esub) -> None:
    from ..experiments.wild import QUICK

    e = _study(esub, "wild", "in the wild: every image through random JPEG / resize / crop chains; accuracy, "
               "real-vs-fake and open-set AUROC / AP of every method, with the pixel control", SPACES_OR_NONE)
    _baseline_args(e)
    e.add_argument("--seeds", type=int, default=None, help="seeds (default 3; 2 with --quick)")
    e.add_argument("--where", default=None, help="COLUMN=VALUE[,...]: only the models whose models.csv row matches")
    e.add_argument("--chain-seed", type=int, default=0, help="seed of the processing chains (and of the real-class draw)")
    e.add_argument("--no-pixel-control", action="store_true", help="leave out ManiFPT's attributor on the images")
    e.add_argument("--quick", action="store_true",
                   help=f"the quick preset: {QUICK['per_model']} images per model, {QUICK['seeds']} seeds x "
                        f"{QUICK['epochs']} epochs, baselines {','.join(QUICK['baselines'])} (each unless given)")
    e.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT/progress.json")
    add_train(e)
    e.set_defaults(epochs=None)


def run(args) -> int:
    from .. import experiments as ex
    from ..artifact_store import parse_bytes
    from ..experiments import model_type, open_set, robustness, training_data, layer_type

    check_positive(args, "size", "epochs", "seeds", "batch_size")
    resolve_data(args)
    device = ex.resolve_device(args.device)
    kw = data_kwargs(args, device)
    train = {k: getattr(args, k) for k in ("arch", "epochs", "batch_size") if hasattr(args, k)}
    study = args.experiment
    if study == "wild":
        text, r = _run_wild(args, ex, kw, train)
    elif study in ("robustness", "open-set"):
        kw.pop("neighbour_space")
        common = dict(spaces=parse_spaces(args.spaces, allow_none=True), baselines=parse_baselines(args.baselines),
                      baseline_preset=args.baseline_preset, seed=args.seed, **train, **kw)
        if study == "robustness":
            r = ex.run_robustness(args.data, args.out, augment=args.augment, **common)
            text = ex.table(*robustness.pivot(r["rows"]))
        else:
            check_keep(args.keep)
            r = ex.run_open_set(args.data, args.out, method=args.score, keep=args.keep, **common)
            text = ex.table(r["summary"], open_set.SUMMARY_COLUMNS)
    elif study == "training-data":
        r = ex.run_training_data(args.data, args.out, spaces=parse_spaces(args.spaces), type_column=args.type_column,
                                 target_column=args.target_column, seeds=args.seeds, **train, **kw)
        text = ex.table(r["rows"], training_data.COLUMNS)
    elif study == "layer-type":
        factors = [f.strip() for f in args.factors.split(",")] if args.factors else None
        check_positive(args, "components")
        r = ex.run_layer_type(args.data, args.out, spaces=parse_spaces(args.spaces), factors=factors,
                              max_dims=args.components, **kw)
        text = ex.table(r["rows"], layer_type.COLUMNS)
    else:
        spaces, names = parse_spaces(args.spaces, allow_none=True), parse_baselines(args.baselines)
        if not spaces and not names and not args.pixel_control:
            raise ValueError("nothing to run: give --spaces, --baselines and/or --pixel-control")
        r = ex.run_model_type(args.data, args.out, spaces=spaces, seeds=args.seeds, baselines=names,
                              baseline_preset=args.baseline_preset, baseline_args=parse_baseline_args(args.baseline_arg, names),
                              where=parse_where(args.where), resume=args.resume, pixel_control=args.pixel_control,
                              memory_budget=parse_bytes(args.memory_budget), **train, **kw)
        text = ex.table(r["rows"], model_type.COLUMNS)
    print(text)
    write_tables(args.out, [text], r)
    return 0


def _run_wild(args, ex, kw, train) -> tuple[str, dict]:
    """--quick fills what was not given (images per model, seeds, epochs, baselines) from wild.QUICK."""
    from ..experiments import wild

    quick = wild.QUICK if args.quick else {}
    kw.pop("neighbour_space")
    if kw["per_model"] is None:
        kw["per_model"] = quick.get("per_model")
    train["epochs"] = args.epochs or quick.get("epochs", 30)
    baselines = parse_baselines(args.baselines) if args.baselines != "none" or not quick else list(quick["baselines"])
    r = ex.run_wild(args.data, args.out, spaces=parse_spaces(args.spaces, allow_none=True), baselines=baselines,
                    baseline_preset=args.baseline_preset, seeds=args.seeds or quick.get("seeds", 3),
                    where=parse_where(args.where), pixel_control=not args.no_pixel_control, chain_seed=args.chain_seed,
                    resume=args.resume, **train, **kw)
    return ex.table(r["rows"], wild.COLUMNS), r
