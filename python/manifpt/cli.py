"""The manifpt command line.

    manifpt demo   the paper's three studies on the embedded GM-Mini (quick preset, ~11 min on 2 cores; --full)
    manifpt bench  exactness + speed of the projection op vs FAISS and torch (--preset demo: one minute)
    manifpt project [--fakes F.npy --reals R.npy] --out DIR
                   nearest real, distance and artifact of every fake; runs under torchrun too
                   (reals sharded over ranks, streamed from disk), see docs/scale.md
    manifpt artifacts [--data ROOT] --space rgb|freq|sl|ssl      artifacts of a GM folder + figures
    manifpt fit [--data ROOT] --space S                          train an attributor on artifacts
    manifpt predict --model CKPT IMAGES_OR_DIR ...             attribute images
    manifpt evaluate --model CKPT [--data ROOT]                  accuracy + confusion matrix
    manifpt experiment model-type [--data ROOT] --spaces rgb,freq --seeds 3   (paper Table 1)
    manifpt experiment training-data [--data ROOT]                             (paper Table 5)
    manifpt experiment layer-type [--data ROOT]                                (paper Table 6)
    manifpt experiment robustness [--data ROOT] [--augment]     accuracy under JPEG/rescale/blur/noise/crop
    manifpt experiment open-set [--data ROOT]                   unknown generators: AUROC, leave-one-model-out
    manifpt ssl-pretrain [--data ROOT] --out ssl.pth             Barlow Twins on your own reals (ssl space)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__


def _plot(rows, sgemm, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_write

    labels = [f"{r.m}x{r.n}x{r.d}" for r in rows]
    series = {
        "manifpt (exact)": [r.ours_gflops for r in rows],
        "FAISS IndexFlatL2": [r.faiss_gflops or 0 for r in rows],
        "torch cdist+argmin": [(2 * r.m * r.n * r.d / r.cdist_s / 1e9) if r.cdist_s else 0 for r in rows],
    }
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(series)
    for k, (name, vals) in enumerate(series.items()):
        ax.bar([i + k * width for i in range(len(rows))], vals, width, label=name)
    ax.axhline(max(sgemm.values()), color="k", ls="--", lw=1, label="sgemm rate (measured)")
    ax.set_xticks([i + width for i in range(len(rows))], labels)
    ax.set_xlabel("M x N x D")
    ax.set_ylabel("effective GFLOP/s (2MND / time)")
    ax.set_title("Nearest-real projection + artifact, CPU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def run_bench(preset: str, out: Path, repeats: int, memory: tuple[int, int, int] | None) -> int:
    import torch
    from tqdm import tqdm

    from . import bench
    from .io import atomic_write_json, atomic_write_text

    print(f"manifpt {__version__}: projection op, preset '{preset}', {torch.get_num_threads()} threads")
    sgemm = bench.sgemm_gflops()
    print("sgemm rate measured now: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in sgemm.items()))
    rows = []
    for m, n, d in tqdm(bench.SHAPES[preset], desc="shapes", unit="shape"):
        rows.append(bench.compare(m, n, d, repeats=repeats))

    # The case that motivates the exact re-rank: vectors sharing a large offset (similar images).
    g = torch.Generator().manual_seed(0)
    base = torch.rand(256, generator=g) * 300
    x = base + 0.05 * torch.randn(2000, 256, generator=g)
    y = base + 0.05 * torch.randn(4000, 256, generator=g)
    import manifpt_ext

    exact = manifpt_ext.project_reference(x, y).index
    ours_ok = (manifpt_ext.project(x, y).index == exact).float().mean().item()
    faiss_ok = (bench.FaissFlat(y)(x)[1] == exact).float().mean().item() if bench.faiss_available() else None

    table = bench.markdown_table(rows, sgemm)
    print()
    print(table)
    print()
    print(
        "Shared-offset case (2000 x 4000 x 256, offset 300, noise 0.05), rows with the exact nearest real: "
        f"manifpt {100 * ours_ok:.1f}%" + (f", FAISS {100 * faiss_ok:.1f}%" if faiss_ok is not None else "")
    )
    extra = {"shared_offset_exact_rows": {"manifpt": ours_ok, "faiss": faiss_ok}}
    if memory:
        m, n, d = memory
        mem = bench.peak_rss_of_projection(m, n, d)
        extra["memory"] = {"shape": [m, n, d], **mem}
        print(
            f"Memory, ({m}, {n}, {d}) in a fresh process: peak RSS grew {mem['growth_mib']:.0f} MiB for "
            f"{mem['outputs_mib']:.0f} MiB of outputs, i.e. {mem['beyond_outputs_mib']:.0f} MiB beyond inputs + outputs "
            f"(a float32 distance matrix would be {mem['cdist_matrix_mib']:.0f} MiB)"
        )
    out.mkdir(parents=True, exist_ok=True)
    result = bench.rows_to_json(rows, sgemm, extra)
    atomic_write_json(out / "bench.json", result)
    atomic_write_text(out / "bench.md", table + "\n")
    _plot(rows, sgemm, out / "bench.png")
    print(f"\nwrote {out / 'bench.json'}, {out / 'bench.md'}, {out / 'bench.png'}")
    return 0 if ours_ok == 1.0 else 1


def _data_args(p, space=True) -> None:
    p.add_argument("--data", default="gm-mini", help="GM folder ROOT/real/** + ROOT/<model>/**, or gm-mini (the embedded benchmark, the default)")
    if space:
        p.add_argument("--space", choices=("rgb", "freq", "sl", "ssl"), default="rgb")
    p.add_argument("--size", type=int, default=32, help="images are brought to SIZE x SIZE (default 32)")
    p.add_argument("--weights", default=None, help="local weights file for sl/ssl (never downloaded)")
    p.add_argument("--neighbour-space", choices=("rgb",), default=None,
                   help="search the nearest real in RGB, take the difference in --space (the authors' code)")
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable images instead of stopping")


def _common(p, out: str) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--out", type=Path, default=Path("runs") / out, help=f"folder for results.json and figures (runs/{out})")


def _train_args(p) -> None:
    p.add_argument("--arch", choices=("small", "resnet50"), default="small", help="attributor for image artifacts")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)


def _add_pipeline_commands(sub) -> None:
    p = sub.add_parser("artifacts", help="artifacts of every generated image of a GM folder")
    _data_args(p)
    _common(p, "artifacts")
    p = sub.add_parser("fit", help="train an attributor on the artifacts of a GM folder")
    _data_args(p)
    _train_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--open-set-score", choices=("msp", "energy", "fingerprint"), default="energy",
                   help="score for flagging unknown generators: max softmax probability, energy, or the Mahalanobis "
                        "distance to per-class fingerprint statistics of the artifacts")
    p.add_argument("--keep", type=float, default=0.95, help="share of known validation images the threshold keeps")
    _common(p, "fit")
    p = sub.add_parser("predict", help="attribute images with a trained attributor")
    p.add_argument("--model", type=Path, required=True, help="model.pt written by `manifpt fit`")
    p.add_argument("images", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--data", default=None, help="GM folder of the reals, or gm-mini (default: the one it was trained on)")
    p.add_argument("--closed-set", action="store_true", help="always name a known generator (no 'unknown')")
    _common(p, "predict")
    p = sub.add_parser("evaluate", help="accuracy of a trained attributor on a GM folder")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", default="gm-mini", help="GM folder ROOT/real/** + ROOT/<model>/**, or gm-mini (the embedded benchmark, the default)")
    _common(p, "evaluate")
    p = sub.add_parser("experiment", help="the paper's experiments")
    esub = p.add_subparsers(dest="experiment", required=True)
    def experiment(name: str, help: str, spaces_help: str = "comma-separated: rgb,freq,sl,ssl"):
        e = esub.add_parser(name, help=help)
        _data_args(e, space=False)
        e.add_argument("--spaces", default="rgb,freq", help=spaces_help)
        _common(e, name)
        return e

    e = experiment("model-type", "Table 1: model-type attribution, accuracy mean +- std over seeds and FDR",
                   "comma-separated: rgb,freq,sl,ssl (or 'none')")
    e.add_argument("--baselines", default="none",
                   help="comma-separated baselines (mccloskey18,nataraj19,durall20,dzanic20,wang20,marra18,marra19,yu19), "
                        "'all' or 'none' (default)")
    e.add_argument("--baseline-preset", choices=("cpu", "paper"), default="cpu",
                   help="cpu: the baselines' networks sized for small images on a CPU; paper: each paper's settings")
    e.add_argument("--baseline-arg", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="override one constructor argument of a baseline over its preset, e.g. yu19.lr=1e-4 or "
                        "nataraj19.levels=128 (repeatable; docs/baselines.md lists them)")
    e.add_argument("--seeds", type=int, default=3)
    e.add_argument("--where", default=None, help="COLUMN=VALUE[,...]: only the models whose models.csv row matches "
                   "(e.g. training_set=photo: models of one training set, as in the paper)")
    e.add_argument("--pixel-control", action="store_true", help="add a row of the same attributor, splits and seeds "
                   "trained on the images instead of their artifacts (what the subtraction adds)")
    e.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT/progress.json "
                   "(same settings): finished rows and seeds are kept")
    _train_args(e)
    e = experiment("training-data", "Table 5: predict the training set of models of one type")
    e.add_argument("--type-column", default="type", help="models.csv column naming the model type")
    e.add_argument("--target-column", default="training_set", help="models.csv column naming the training set")
    e.add_argument("--seeds", type=int, default=3)
    _train_args(e)
    e = experiment("layer-type", "Table 6: NMI of artifact clusters against each design factor")
    e.add_argument("--factors", default=None, help="comma-separated models.csv columns (default: all)")
    for name, help in (("robustness", "accuracy under JPEG, rescaling, blur, noise and crops of the test images"),
                       ("open-set", "leave-one-model-out: AUROC of known vs unknown generators, closed-set accuracy")):
        e = experiment(name, help, "comma-separated: rgb,freq,sl,ssl (or 'none')")
        e.add_argument("--baselines", default="none", help="comma-separated baselines, 'all' or 'none'")
        e.add_argument("--baseline-preset", choices=("cpu", "paper"), default="cpu")
        e.add_argument("--seed", type=int, default=0)
        _train_args(e)
        if name == "robustness":
            e.add_argument("--augment", action="store_true", help="train on clean + one randomly corrupted copy")
        else:
            e.add_argument("--score", choices=("msp", "energy", "fingerprint"), default="energy")
            e.add_argument("--keep", type=float, default=0.95, help="share of known validation images the threshold keeps")
    p = sub.add_parser("ssl-pretrain", help="train a Barlow Twins backbone on the real images (for --space ssl)")
    p.add_argument("--data", default="gm-mini", help="GM folder (its real/ images), a folder of images, or gm-mini (default)")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--arch", choices=("resnet18", "resnet50"), default="resnet18")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("runs") / "ssl.pth", help="backbone file (give it to --weights)")


def _parse_spaces(text: str, allow_none: bool = False) -> list[str]:
    if allow_none and text == "none":
        return []
    spaces = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in spaces if s not in ("rgb", "freq", "sl", "ssl")]
    if bad or not spaces:
        raise ValueError(f"--spaces: unknown space(s) {bad or spaces}: choose from rgb, freq, sl, ssl")
    return spaces


def _parse_baselines(text: str, known) -> list[str]:
    if text in ("none", "all"):
        return list(known) if text == "all" else []
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in known]
    if unknown:
        raise ValueError(f"--baselines: unknown baseline(s) {unknown}: choose from {', '.join(known)}")
    return names


def _parse_baseline_args(items: list[str], names: list[str]) -> dict[str, dict]:
    """['yu19.lr=1e-4', ...] -> {'yu19': {'lr': 0.0001}}; values are Python literals, else strings."""
    import ast

    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, param = key.strip().partition(".")
        if not sep or not dot or not param:
            raise ValueError(f"--baseline-arg must be NAME.KEY=VALUE (e.g. yu19.lr=1e-4), got {item!r}")
        if name not in names:
            raise ValueError(f"--baseline-arg {item!r}: {name!r} is not among --baselines ({', '.join(names) or 'none'})")
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            value = value.strip()
        out.setdefault(name, {})[param] = value
    return out


def _run_pipeline_command(args) -> int:
    from . import experiments as ex

    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    tables = []

    def show(text: str) -> None:
        print(text)
        tables.append(text)
    try:
        if args.data is not None:
            from .data import gm_mini

            args.data = gm_mini.resolve(args.data)
        device = ex.resolve_device(args.device)
        for name in ("epochs", "seeds", "batch_size", "size"):
            if getattr(args, name, 1) is not None and getattr(args, name, 1) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
        kw = {}
        if hasattr(args, "space") or args.command == "experiment":
            kw = dict(size=args.size, weights=args.weights, neighbour_space=args.neighbour_space, skip_bad=args.skip_bad,
                      device=device)
        if args.command == "artifacts":
            r = ex.run_artifacts(args.data, args.space, args.out, **kw)
            show(ex.table(r["models"], [("model", "model"), ("images", "images"), ("mean distance", lambda m: f"{m['mean_distance']:.4f}"),
                                         ("copies of a real", "identical_to_a_real")]))
            fdr = r["fdr"]["fdr"]
            print(f"\nFD ratio of the artifacts ({args.space}): " + ("n/a (no spread within a model)" if fdr is None else f"{fdr:.2f}"))
        elif args.command == "fit":
            if not 0 < args.keep <= 1:
                raise ValueError(f"--keep must be in (0, 1], got {args.keep}")
            r = ex.run_fit(args.data, args.space, args.out, arch=args.arch, epochs=args.epochs, seed=args.seed,
                           batch_size=args.batch_size, optimizer=args.optimizer, resume=args.resume,
                           open_set_score=args.open_set_score, keep=args.keep, **kw)
            c = r["calibration"]
            print(f"test accuracy ({args.space}, {args.arch}): {pct(r['accuracy'])}% on {r['sizes']['test']} images; "
                  f"calibration: T = {c['temperature']:.2f}, test ECE {c['ece_test_before']:.3f} -> {c['ece_test_after']:.3f}; "
                  f"model: {args.out / 'model.pt'}")
        elif args.command == "predict":
            r = ex.run_predict(args.model, args.images, args.out, device=device, data=args.data, open_set=not args.closed_set)
            show(ex.table(r["predictions"], [("file", "file"), ("predicted", "predicted"), ("nearest known", "nearest_known"),
                                               ("probability", lambda p: f"{p['probability']:.3f}"),
                                               ("copy of a real", "identical_to_a_real")]))
        elif args.command == "ssl-pretrain":
            from .data import list_images, load_images
            from .ssl_pretrain import pretrain

            folder = args.data / "real" if (args.data / "real").is_dir() else args.data
            images, _ = load_images(list_images(folder), args.size)
            losses = pretrain(images, args.out, arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
                              seed=args.seed, device=device)
            print(f"Barlow Twins loss {losses[0]:.1f} -> {losses[-1]:.1f} over {len(losses)} epochs on {len(images)} images; "
                  f"backbone: {args.out} (use: --space ssl --weights {args.out})")
            return 0
        elif args.command == "evaluate":
            r = ex.run_evaluate(args.model, args.data, args.out, device=device)
            print(f"accuracy: {pct(r['accuracy'])}%")
        elif args.experiment in ("robustness", "open-set"):
            from . import robust
            from .baselines import BASELINES

            spaces = _parse_spaces(args.spaces, allow_none=True)
            names = _parse_baselines(args.baselines, BASELINES)
            common = dict(spaces=spaces, baselines=names, baseline_preset=args.baseline_preset, seed=args.seed,
                          arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, size=args.size,
                          weights=args.weights, skip_bad=args.skip_bad, device=device)
            if args.experiment == "robustness":
                r = robust.run_robustness(args.data, args.out, augment=args.augment, **common)
                conds = list(dict.fromkeys((x["corruption"], x["strength"]) for x in r["rows"]))
                methods = list(dict.fromkeys(x["method"] for x in r["rows"]))
                acc = {(x["method"], x["corruption"], x["strength"]): x["accuracy"] for x in r["rows"]}
                show(ex.table([{"m": m, **{f"{k} {v}" if k != "clean" else "clean": pct(acc[(m, k, v)]) for k, v in conds}}
                               for m in methods],
                              [("method", "m")] + [(c, c) for c in [f"{k} {v}" if k != "clean" else "clean" for k, v in conds]]))
            else:
                if not 0 < args.keep <= 1:
                    raise ValueError(f"--keep must be in (0, 1], got {args.keep}")
                r = robust.run_open_set(args.data, args.out, method=args.score, keep=args.keep, **common)
                show(ex.table(r["summary"], [("method", "method"), ("AUROC", lambda x: f"{x['auroc']:.3f}"),
                                             ("closed-set accuracy %", lambda x: pct(x["closed_set_accuracy"])),
                                             ("unknown flagged %", lambda x: pct(x["unknown_detected"])),
                                             ("known rejected %", lambda x: pct(x["known_rejected"]))]))
        elif args.experiment in ("training-data", "layer-type"):
            spaces = _parse_spaces(args.spaces)
            if args.experiment == "training-data":
                r = ex.run_training_data(args.data, args.out, spaces=spaces, type_column=args.type_column,
                                         target_column=args.target_column, seeds=args.seeds, arch=args.arch,
                                         epochs=args.epochs, batch_size=args.batch_size, **kw)
                show(ex.table(r["rows"], ex.TABLE_COLUMNS["training-data"]))
            else:
                factors = [f.strip() for f in args.factors.split(",")] if args.factors else None
                r = ex.run_layer_type(args.data, args.out, spaces=spaces, factors=factors, **kw)
                show(ex.table(r["rows"], ex.TABLE_COLUMNS["layer-type"]))
        else:
            from .baselines import BASELINES

            spaces = _parse_spaces(args.spaces, allow_none=True)
            names = _parse_baselines(args.baselines, BASELINES)
            if not spaces and not names and not args.pixel_control:
                raise ValueError("nothing to run: give --spaces, --baselines and/or --pixel-control")
            where = None
            if args.where:
                pairs = [w.split("=", 1) for w in args.where.split(",") if w.strip()]
                if any(len(p) != 2 or not p[0].strip() for p in pairs):
                    raise ValueError(f"--where must be COLUMN=VALUE[,COLUMN=VALUE], got {args.where!r}")
                where = {k.strip(): v.strip() for k, v in pairs}
            r = ex.run_model_type(args.data, args.out, spaces=spaces, seeds=args.seeds, arch=args.arch, epochs=args.epochs,
                                  batch_size=args.batch_size, baselines=names, baseline_preset=args.baseline_preset,
                                  baseline_args=_parse_baseline_args(args.baseline_arg, names), where=where,
                                  resume=args.resume, pixel_control=args.pixel_control, **kw)
            show(ex.table(r["rows"], ex.TABLE_COLUMNS["model-type"]))
    except (FileNotFoundError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if tables:
        from .io import atomic_write_text

        atomic_write_text(args.out / "results.md", "\n\n".join(tables) + "\n")
    print(f"\nwrote {args.out}/results.json" + (", results.md" if tables else "")
          + "".join(f", {args.out}/{f}" for f in r.get("figures", [])))
    return 0


def _run_demo(args) -> int:
    from .demo import run_demo
    from .experiments import resolve_device

    try:
        r = run_demo(args.out, full=args.full, data=args.data, device=resolve_device(args.device), resume=args.resume)
    except (FileNotFoundError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for study, text in r["tables"].items():
        print(f"\n{study} ({r['seconds'][study]:.0f} s)\n{text}")
    print(f"\nwrote {args.out}/summary.md, summary.json; figures:\n  " + "\n  ".join(r["figures"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    from .bench import SHAPES

    parser = argparse.ArgumentParser(prog="manifpt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"manifpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the paper's three studies on the embedded GM-Mini (quick preset; --full)")
    p.add_argument("--full", action="store_true", help="the complete settings (all baselines, 3 seeds x 30 epochs)")
    p.add_argument("--data", default="gm-mini", help="GM folder with models.csv, or gm-mini (default)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--out", type=Path, default=Path("runs") / "demo", help="folder for the studies' results and figures")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo in OUT (same preset): finished "
                   "studies are kept, model-type continues from its last finished seed")
    p = sub.add_parser("bench", help="projection op vs FAISS and torch: exactness and speed table")
    p.add_argument("--preset", choices=sorted(SHAPES), default="full", help="shapes (demo: a one-minute table)")
    p.add_argument("--out", type=Path, default=Path("runs") / "bench", help="folder for bench.json/.md/.png")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per method (the best is kept)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS run on (20000, 200000, 64)")
    p = sub.add_parser("project", help="artifacts of fakes against reals: .npy arrays or image folders (torchrun-aware)")
    p.add_argument("--fakes", type=Path, default=None, help=".npy array (M, ...), folder of generated images, or a GM folder")
    p.add_argument("--reals", type=Path, default=None, help=".npy array (N, ...) or folder of real images")
    p.add_argument("--data", default="gm-mini", help="without --fakes/--reals: the models' images of this GM folder "
                   "against its real/ (default gm-mini)")
    p.add_argument("--space", choices=("rgb", "freq", "sl", "ssl"), default="rgb", help="embedding for image folders")
    p.add_argument("--size", type=int, default=None, help="bring images to SIZE x SIZE (shorter side + centre crop)")
    p.add_argument("--weights", default=None, help="local weights file for --space sl/ssl (never downloaded)")
    p.add_argument("--out", type=Path, default=Path("runs") / "project", help="folder for artifacts.npy, index.npy, distance.npy")
    p.add_argument("--batch", type=int, default=4096, help="fakes per block (default 4096)")
    p.add_argument("--memory-budget-mb", type=int, default=None, help="MiB of reals held at once per rank")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before a stuck collective fails")
    _add_pipeline_commands(sub)
    args = parser.parse_args(argv)
    if args.command in ("artifacts", "fit", "predict", "evaluate", "experiment", "ssl-pretrain"):
        return _run_pipeline_command(args)
    if args.command == "project":
        from .pipeline import run

        if args.memory_budget_mb is not None and args.memory_budget_mb < 1:
            parser.error(f"--memory-budget-mb must be >= 1, got {args.memory_budget_mb}")
        if args.batch < 1:
            parser.error(f"--batch must be >= 1, got {args.batch}")
        budget = None if args.memory_budget_mb is None else args.memory_budget_mb << 20
        if (args.fakes is None) != (args.reals is None):
            parser.error("give both --fakes and --reals, or neither (then --data: its models' images against its real/)")
        try:
            if args.fakes is None:
                from .data import gm_mini

                root = gm_mini.resolve(args.data)
                args.fakes, args.reals = root, root / "real"
            manifest = run(args.fakes, args.reals, args.out, space=args.space, size=args.size, weights=args.weights,
                           batch=args.batch, memory_budget=budget, timeout_s=args.timeout)
        except (FileNotFoundError, ValueError, TypeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"projected {manifest['shape']['fakes'][0]} fakes onto {manifest['shape']['reals'][0]} reals on "
                  f"{manifest['world_size']} rank(s) in {manifest['seconds']:.2f}s -> {args.out}/")
        return 0
    if args.command == "demo":
        return _run_demo(args)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    memory = None if args.no_memory or args.preset != "full" else (20000, 200000, 64)
    return run_bench(args.preset, args.out, args.repeats, memory)


if __name__ == "__main__":
    sys.exit(main())
