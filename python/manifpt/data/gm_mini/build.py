"""Trains the GM-Mini zoo from scratch and writes its samples: `python -m manifpt.data.gm_mini build --out DIR`.

Every model trains in its own process with one thread and its own seed, so the result depends on the torch
build but not on the machine's core count or on `--jobs`. A model whose sheet already exists in DIR is
not trained again (the build resumes after an interruption); `--force` retrains everything.

DIR receives, in the layout that ships in the package (see `manifpt.data.gm_mini`):
    models.csv            one row per model: its design factors and training set
    samples/<model>.png   SAMPLES images of 32x32 as a sheet of 25 columns (lossless PNG)
    training.json         per model: steps, batch size, seconds, loss curve, final loss
    manifest.json         SHA-256 of each file above and of the two real sets, and what built them
    checkpoints/<model>.pt  the trained weights (not shipped)
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ...io import atomic_write, sha256_file
from . import reals as real_sets
from .sheets import SHEET_COLUMNS, png_bytes, sheet

SAMPLES = 500
BATCH = 64
FACTORS = ["family", "upsampling", "nonlinearity", "normalization", "loss", "training_set"]


@dataclass(frozen=True)
class Spec:
    model: str           # folder name
    type: str            # the architecture + loss, independent of the training set (Table 5's rows)
    family: str
    upsampling: str
    nonlinearity: str
    normalization: str
    loss: str
    training_set: str
    steps: int
    seed: int


def _zoo() -> list[Spec]:
    """The partial factorial design. Within the GANs and VAEs, upsampling, last nonlinearity, normalization
    and loss vary independently enough that every pair of factors has two models differing in one and not
    the other; three types are trained on both real sets for the training-data study."""
    types = {  # type: (family, upsampling, nonlinearity, normalization, loss, steps)
        "dcgan": ("gan", "transposed", "tanh", "batch", "nonsaturating", 2000),
        "gan-nearest-ls": ("gan", "nearest", "tanh", "batch", "lsgan", 2000),
        "gan-bilinear-wgangp": ("gan", "bilinear", "sigmoid", "none", "wgan-gp", 2000),
        "gan-shuffle-in-wgangp": ("gan", "pixelshuffle", "tanh", "instance", "wgan-gp", 2000),
        "gan-tconv-linear-wgangp": ("gan", "transposed", "none", "none", "wgan-gp", 2000),
        "vae": ("vae", "transposed", "sigmoid", "batch", "elbo", 3000),
        "betavae-nearest": ("vae", "nearest", "tanh", "none", "beta-elbo", 3000),
        "vae-shuffle-linear": ("vae", "pixelshuffle", "none", "batch", "elbo", 3000),
        "glow": ("flow", "none", "sigmoid", "actnorm", "mle", 2000),
        "realnvp": ("flow", "none", "none", "none", "mle", 2000),
        "ddpm": ("diffusion", "nearest", "none", "group", "eps-mse", 1500),
        "ddpm-tconv-x0": ("diffusion", "transposed", "none", "none", "x0-mse", 1500),
    }
    runs = [(t, "photo") for t in types] + [("dcgan", "digits"), ("vae", "digits"), ("ddpm", "digits")]
    out = []
    for i, (t, data) in enumerate(runs):
        family, up, nl, norm, loss, steps = types[t]
        out.append(Spec(f"{t}_{data}", t, family, up, nl, norm, loss, data, steps, seed=1000 + i))
    return out


ZOO = _zoo()


def with_seeds(specs: list[Spec], seeds: int) -> list[Spec]:
    """Each spec trained `seeds` times: <model>_seed<k>, identical but for the seed (seed k=0 is the zoo's
    own, so that model's samples are the shipped ones). Models one seed apart are the hardest attribution
    case there is: nothing in their design differs, only the initialisation and the order of the data."""
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if seeds == 1:
        return list(specs)
    return [replace(s, model=f"{s.model}_seed{k}", seed=s.seed + 1000 * k) for s in specs for k in range(seeds)]


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def train_one(spec: Spec, images: np.ndarray, out: str, quick: bool) -> dict:
    """Trains one model on `images` (its training set, (n, 32, 32, 3) uint8) in this (worker) process, writes
    its checkpoint and sample sheet, returns its record."""
    import torch

    from . import zoo

    torch.set_num_threads(1)
    torch.manual_seed(spec.seed)
    np_rng = np.random.default_rng(spec.seed)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    model = zoo.make_model(spec.family, spec.upsampling, spec.normalization, spec.nonlinearity, spec.loss, seed=spec.seed)
    if quick and spec.family == "diffusion":
        model.sample_steps = 4
    opts = model.optimizers()
    steps = 5 if quick else spec.steps
    losses, t0 = [], time.time()
    model.train()
    order = np.empty(0, np.int64)
    for _ in range(steps):
        if len(order) < BATCH:  # epochs of a seeded permutation
            order = np.concatenate([order, np_rng.permutation(len(data))])
        batch, order = data[torch.from_numpy(order[:BATCH])], order[BATCH:]
        losses.append(model.train_step(batch, opts))
    seconds_train = time.time() - t0
    images = model.sample(16 if quick else SAMPLES).numpy()
    out = Path(out)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    _atomic_write(out / "checkpoints" / f"{spec.model}.pt", buf.getvalue())
    _atomic_write(out / "samples" / f"{spec.model}.png", png_bytes(sheet(images)))
    every = max(1, steps // 40)
    curve = [float(np.mean(losses[i:i + every])) for i in range(0, steps, every)]
    record = {**asdict(spec), "steps": steps, "batch": BATCH, "samples": len(images), "seconds_train": round(seconds_train, 1),
              "seconds_total": round(time.time() - t0, 1), "loss_curve_every": every, "loss_curve": curve,
              "final_loss": float(np.mean(losses[-min(100, steps):]))}
    _atomic_write(out / "records" / f"{spec.model}.json", json.dumps(record, indent=1).encode())
    return record


def write_models_csv(path: Path, specs: list[Spec]) -> None:
    """One row per model; a `seed` column too when two models share a type and a training set (--seeds),
    so that the layer-type study can ask whether the artifacts cluster by seed."""
    factors = FACTORS + (["seed"] if len({(s.type, s.training_set) for s in specs}) < len(specs) else [])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "type", *factors])
    for s in specs:
        w.writerow([s.model, s.type, *(getattr(s, f) for f in factors)])
    _atomic_write(path, buf.getvalue().encode())


def build(out: Path, *, quick: bool = False, jobs: int | None = None, force: bool = False, only: list[str] | None = None,
          seeds: int = 1, progress: bool = True) -> dict:
    import torch
    from tqdm import tqdm

    out = Path(out)
    specs = [s for s in ZOO if not only or s.model in only]
    if only and len(specs) != len(only):
        raise ValueError(f"--only names unknown models: {sorted(set(only) - {s.model for s in ZOO})}")
    specs = with_seeds(specs, seeds)
    out.mkdir(parents=True, exist_ok=True)
    reals = {name: real_sets.build_real(name) for name in real_sets.REAL_SETS}
    todo = [s for s in specs if force or not (out / "records" / f"{s.model}.json").is_file()]
    # one model of each family first (diffusion, the slowest, leading), then the second of each, and so on:
    # long jobs start early and every family has a sheet to look at within minutes
    rank = {s.model: sum(o.family == s.family for o in specs[:i]) for i, s in enumerate(specs)}
    families = ["diffusion", "gan", "vae", "flow"]
    todo.sort(key=lambda s: (rank[s.model], families.index(s.family)))
    jobs = jobs or len(os.sched_getaffinity(0))
    t0 = time.time()
    if todo:
        # spawn, not fork: a forked child of a process that already ran torch's thread pools can hang
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(train_one, s, reals[s.training_set], str(out), quick): s for s in todo}
            bar = tqdm(total=len(todo), desc="GM-Mini models", unit="model", disable=not progress)
            for f in as_completed(futures):
                r = f.result()
                bar.set_postfix_str(f"{r['model']}: {r['seconds_total']:.0f}s, loss {r['final_loss']:.3f}")
                bar.update()
            bar.close()
    records = {s.model: json.loads((out / "records" / f"{s.model}.json").read_text()) for s in specs}
    write_models_csv(out / "models.csv", specs)
    _atomic_write(out / "training.json", json.dumps(records, indent=1).encode())
    files = ["models.csv", "training.json"] + [f"samples/{s.model}.png" for s in specs]
    manifest = {
        "name": "gm-mini", "format": 1, "size": 32, "sheet_columns": SHEET_COLUMNS, "quick": quick,
        "samples_per_model": {s.model: records[s.model]["samples"] for s in specs},
        "real_sets": {k: {"count": len(v), "sha256": real_sets.sha256_array(v)} for k, v in reals.items()},
        "files": {f: sha256_file(out / f) for f in files},
        "built_with": {"torch": torch.__version__, "numpy": np.__version__, "threads_per_model": 1,
                       "wall_seconds": round(time.time() - t0, 1)},
    }
    _atomic_write(out / "manifest.json", json.dumps(manifest, indent=1).encode())
    return manifest


def figures(root: Path, out: Path, per_model: int = 16) -> list[Path]:
    """docs figures of a build: `zoo.png` (per_model samples of each model, one row each, under rows of both real
    sets) and `losses.png` (each model's training loss curve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import real_set, samples, verify

    root, out = Path(root), Path(out)
    manifest = verify(root)
    training = json.loads((root / "training.json").read_text())
    rows = [(f"real: {k}", real_set(k, manifest)[:per_model]) for k in manifest["real_sets"]]
    rows += [(m, samples(m, root, manifest)[:per_model]) for m in manifest["samples_per_model"]]
    fig, axes = plt.subplots(len(rows), 1, figsize=(per_model * 0.5 + 2.6, len(rows) * 0.55))
    for ax, (name, imgs) in zip(axes, rows):
        ax.imshow(np.concatenate(list(imgs), axis=1), interpolation="nearest")
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(left=0.22, right=0.99, top=0.995, bottom=0.005, hspace=0.08)
    paths = [out / "zoo.png", out / "losses.png"]
    atomic_write(paths[0], lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
    for ax, family in zip(axes, ["gan", "vae", "flow", "diffusion"]):
        for m, r in training.items():
            if r["family"] == family:
                steps = np.arange(len(r["loss_curve"])) * r["loss_curve_every"]
                ax.plot(steps, r["loss_curve"], label=m, lw=1)
        ax.set_title({"gan": "GAN: generator loss", "vae": "VAE: loss per dimension", "flow": "flow: bits per dimension",
                      "diffusion": "diffusion: denoising MSE"}[family], fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    fig.tight_layout()
    atomic_write(paths[1], lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return paths


def models_table(root: Path) -> str:
    """The datasheet's table: each model's factors, training steps, time and final loss."""
    training = json.loads((Path(root) / "training.json").read_text())
    head = ["model", *FACTORS, "steps", "train s", "final loss"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, r in training.items():
        lines.append("| " + " | ".join([m, *(r[f] for f in FACTORS), str(r["steps"]), f"{r['seconds_train']:.0f}",
                                         f"{r['final_loss']:.3f}"]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m manifpt.data.gm_mini", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train every model of the zoo and write its samples")
    b.add_argument("--out", type=Path, required=True, help="output folder (resumes if it holds a partial build)")
    b.add_argument("--quick", action="store_true", help="5 steps and 16 samples per model: a smoke test of every model")
    b.add_argument("--jobs", type=int, default=None, help="models trained at once (default: the CPUs available)")
    b.add_argument("--force", action="store_true", help="retrain models that are already built in --out")
    b.add_argument("--only", default=None, help="comma-separated model names (default: the whole zoo)")
    b.add_argument("--seeds", type=int, default=1, help="train each model with this many seeds (<model>_seed<k>; "
                   "models.csv gets a seed column): the hardest attribution split, one design, K initialisations")
    m = sub.add_parser("materialize", help="write GM-Mini (or a build) as an image folder (ROOT/real/**, ROOT/<model>/**)")
    m.add_argument("--out", type=Path, default=None, help="folder (default: the cache, printed)")
    m.add_argument("--root", type=Path, default=None, help="a build folder (default: the shipped GM-Mini)")
    f = sub.add_parser("figures", help="docs figures of a build (zoo.png, losses.png) and its table of models (printed)")
    f.add_argument("--root", type=Path, default=None, help="a build folder (default: the shipped GM-Mini)")
    f.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.command == "figures":
        from . import SHIPPED

        root = args.root or SHIPPED
        for p in figures(root, args.out):
            print(p)
        print(models_table(root))
        return 0
    if args.command == "build":
        if args.jobs is not None and args.jobs < 1:
            ap.error(f"--jobs must be >= 1, got {args.jobs}")
        only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
        manifest = build(args.out, quick=args.quick, jobs=args.jobs, force=args.force, only=only, seeds=args.seeds)
        print(f"GM-Mini built in {args.out} ({len(manifest['samples_per_model'])} models, "
              f"{manifest['built_with']['wall_seconds']:.0f} s)")
        return 0
    from . import SHIPPED, materialize

    print(materialize(out=args.out, root=args.root or SHIPPED))
    return 0
