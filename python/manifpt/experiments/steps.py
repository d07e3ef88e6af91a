"""The steps every study shares, written once: load and split a GM folder, the artifacts of a space,
fit and score an attributor, fit and score a baseline, the resume state of a long run, and the tables.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import metrics
from ..attribute import Attributor
from ..data import ImageFolderGM
from ..io import atomic_write_json
from ..manifold import Artifacts, RealManifold
from ..spaces import get_embedder

DEFAULT_SIZE = 32


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda or auto, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return device


@dataclass
class Loaded:
    """A GM folder decoded once: row r of fakes/labels is ds.files[positions[r]]."""

    ds: ImageFolderGM
    reals: torch.Tensor
    fakes: torch.Tensor
    labels: torch.Tensor
    positions: list[int]


def load_dataset(data: Path, size: int = DEFAULT_SIZE, skip_bad: bool = False, where: dict | None = None,
                 per_model: int | None = None) -> Loaded:
    ds = ImageFolderGM(data, size=size, where=where, per_model=per_model)
    reals, _ = ds.load_reals(skip_bad=skip_bad)
    return Loaded(ds, reals, *ds.load_all(skip_bad=skip_bad))


def space_artifacts(d: Loaded, space: str, *, weights=None, neighbour_space=None, device: str = "cpu",
                    cache_dir: Path | None = None, progress: bool = True) -> tuple[RealManifold, Artifacts]:
    """The real manifold of `space` and the artifacts of every generated image."""
    manifold = RealManifold(get_embedder(space, weights=weights, device=device), d.reals, cache_dir=cache_dir,
                            progress=progress)
    return manifold, manifold.artifacts(d.fakes, neighbour_space=neighbour_space)


def split_rows(ds: ImageFolderGM, seed: int, positions: list[int], keep: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """ds.split(seed) as row indices of tensors whose row r is ds.files[positions[r]], leaving out rows
    that are not kept (unreadable files, copies of reals)."""
    row_of = {pos: r for r, pos in enumerate(positions)}
    out = {}
    for part, pos in ds.split(seed).items():
        rows = [row_of[p] for p in pos if p in row_of]
        out[part] = torch.tensor([r for r in rows if keep is None or keep[r]], dtype=torch.long)
    return out


def drop_identical(art: Artifacts, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The artifacts and labels of the fakes that are not copies of a real, and how many were dropped."""
    keep = ~art.identical
    return art.artifact[keep], labels[keep], int((~keep).sum())


def fit_attributor(x, y, parts: dict[str, torch.Tensor], class_names: list[str], *, arch="small", epochs=30, seed=0,
                   batch_size=64, optimizer="adamw", device="cpu", progress=True, checkpoint=None, resume=False,
                   settings: dict | None = None, precision="auto", patience: int = 5) -> tuple[Attributor, float]:
    """An Attributor trained on x[parts["train"]] (early stopping on parts["val"]) and its accuracy on
    parts["test"] (None without a "test" part): the fit-and-score step of every study."""
    att = Attributor(len(class_names), tuple(x.shape[1:]), arch=arch, epochs=epochs, seed=seed, batch_size=batch_size,
                     optimizer=optimizer, device=device, class_names=class_names, precision=precision,
                     patience=patience)
    att.fit(x[parts["train"]], y[parts["train"]], x[parts["val"]], y[parts["val"]], checkpoint=checkpoint, resume=resume,
            progress=progress, settings=settings)
    if "test" not in parts:
        return att, None
    pred, _ = att.predict(x[parts["test"]])
    return att, metrics.accuracy(pred.numpy(), y[parts["test"]].numpy())


def baseline_params(name: str, preset: str, size: int, epochs: int, seed: int, device: str, progress: bool = False,
                    overrides: dict | None = None) -> dict:
    """Constructor arguments of a baseline under a preset, then `overrides` ({param: value}) on top.

    `paper` keeps each paper's settings: ResNet50 at 224 (Wang20), Inception-v3 at 299 (Marra18), 128 x 128
    (Yu19). `cpu` keeps the architectures but fits them to small images on a CPU:
    - Wang20 uses the small ResNet at the image size;
    - Marra18 uses Inception-v3's minimum input of 75;
    - Yu19 uses the image size rounded up to a power of two;
    - Nataraj19 counts co-occurrences over 64 grey levels, with padded convolutions (14x fewer multiply-adds);
    - Wang20 and Yu19 train with lr 1e-3 (Nataraj19 and Marra19 keep their 1e-3, Marra18 its 1e-4).
    The CNN baselines get `epochs`; every baseline gets `seed`."""
    from ..baselines import BASELINES
    from ..baselines.base import SklearnBaseline

    params = {"seed": seed, "epochs": epochs, "device": device, "progress": progress}
    if preset == "cpu":
        params.update({
            "wang20": {"arch": "small", "load_size": size + size // 8, "input_size": size, "lr": 1e-3},
            "marra18": {"input_size": 75, "batch_size": 16},
            "yu19": {"input_size": max(8, 1 << (size - 1).bit_length()), "lr": 1e-3},
            "nataraj19": {"levels": 64, "padding": "same"},
        }.get(name, {}))
    elif preset != "paper":
        raise ValueError(f"--baseline-preset must be 'cpu' or 'paper', got {preset!r}")
    base = {"seed": seed} if issubclass(BASELINES[name], SklearnBaseline) else params
    return {**base, **(overrides or {})}


def fit_baseline(name: str, images, labels, parts: dict[str, torch.Tensor], *, preset="cpu", size=DEFAULT_SIZE, epochs=30,
                 seed=0, device="cpu", progress=False, overrides=None, checkpoint=None, resume=False, features=None,
                 reals=None):
    """A baseline trained on images[parts["train"]] (validated on parts["val"]) and, when parts has a
    "test" part, its accuracy there (else None): the fit-and-score step for baselines. `features`: a
    hand-crafted baseline's features of every row of `images`, computed once for all seeds. `reals`: the
    real images, for a baseline that models them (FSD learns its filters there; the others ignore them)."""
    from ..baselines import make_baseline
    from ..baselines.base import SklearnBaseline

    b = make_baseline(name, **baseline_params(name, preset, size, epochs, seed, device, progress, overrides=overrides))
    fixed = features is not None and isinstance(b, SklearnBaseline)
    if reals is not None and not fixed:  # precomputed features already saw the reals
        b.use_reals(reals)
    if fixed:
        b.fit_features(features[parts["train"]], labels[parts["train"]])
        predict = lambda rows: b.predict_features(features[rows])  # noqa: E731
    else:
        b.fit(images[parts["train"]], labels[parts["train"]], images[parts["val"]], labels[parts["val"]],
              checkpoint=checkpoint, resume=resume)
        predict = lambda rows: b.predict(images[rows])  # noqa: E731
    if "test" not in parts:
        return b, None
    return b, metrics.accuracy(predict(parts["test"]), labels[parts["test"]].numpy())


def check_baseline_overrides(baseline_args: dict, preset: str, size: int, epochs: int, device: str) -> None:
    """A typo in --baseline-arg fails now, not after an hour of other baselines."""
    from ..baselines import make_baseline

    for name, overrides in baseline_args.items():
        try:
            make_baseline(name, **baseline_params(name, preset, size, epochs, 0, device, overrides=overrides))
        except TypeError as e:
            raise ValueError(f"baseline arguments {overrides} of {name}: {e}") from None


def resume_state(path: Path, settings: dict, resume: bool) -> dict:
    """What an earlier run with the same `settings` left in `path` (progress.json): {"settings": settings
    as JSON gives them back, "rows": finished rows, "running": the unfinished row's finished seeds or None}.
    A file of other settings is an error: mixing seeds of two configurations into one mean +- std would be
    a wrong table, not a resumed one."""
    settings = json.loads(json.dumps(settings, default=str))  # tuples, paths: compared as they are stored
    if not resume or not path.is_file():
        return {"settings": settings, "rows": [], "running": None, "resumed": False}
    prev = json.loads(path.read_text())
    old = prev.get("settings") or {}
    if old != settings:
        diff = sorted(k for k in set(settings) | set(old) if old.get(k) != settings.get(k))
        raise ValueError(f"--resume: {path} was written with other settings ({', '.join(diff)}): "
                         "use another --out, or leave out --resume to start again")
    return {**prev, "resumed": True}


def factor_column(ds: ImageFolderGM, column: str) -> dict[str, str]:
    """model -> its value in models.csv's `column`, for every model of ds."""
    if not ds.factors:
        raise ValueError(f"{ds.root} has no models.csv: the experiment needs the design factors of each model")
    missing = [m for m in ds.models if m not in ds.factors]
    if missing:
        raise ValueError(f"{ds.root / 'models.csv'} has no row for {missing}")
    columns = sorted(next(iter(ds.factors.values())))
    if column not in columns:
        raise ValueError(f"{ds.root / 'models.csv'} has no column {column!r}; it has {columns}")
    return {m: ds.factors[m][column] for m in ds.models}


def save_result(out: Path, result: dict) -> dict:
    atomic_write_json(Path(out) / "results.json", result)
    return result


def table(rows: list[dict], columns: list[tuple[str, object]]) -> str:
    """A markdown table of `rows` with (header, key-or-callable) columns."""
    head = "| " + " | ".join(h for h, _ in columns) + " |"
    sep = "|" + "---|" * len(columns)
    body = ["| " + " | ".join(str(f(r) if callable(f) else r[f]) for _, f in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def pct(v: float) -> str:
    return f"{100 * v:.1f}"


def mean_std_pct(x: dict) -> str:
    return f"{pct(x['accuracy_mean'])} +- {pct(x['accuracy_std'])}"


def mean_std_row(accs: list[float]) -> dict:
    mean, std = metrics.mean_std(accs)
    return {"accuracy_mean": mean, "accuracy_std": std, "accuracies": accs}


def as_numpy(x) -> np.ndarray:
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def fit_and_report(ds: ImageFolderGM, art: Artifacts, labels, positions, out: Path, *, space, arch="small", epochs=30,
                   seed=0, batch_size=64, optimizer="adamw", resume=False, device="cpu", progress=True, extra: dict,
                   figures=True, open_set_score="energy", keep=0.95, report=True, precision="auto",
                   patience: int = 5) -> dict:
    """The attributor of one split (`seed`) on the artifacts, with what `manifpt fit` reports: accuracy,
    confusion and, with `report`, calibration (temperature, ECE before and after) and the open-set
    threshold (a study that only tables the accuracy skips them); writes model.pt (with `extra`: what it
    was trained on), results.json and the confusion figure into `out`."""
    import time

    from .. import viz

    keep_rows = ~art.identical
    parts = split_rows(ds, seed, positions, keep_rows)
    x, y = art.artifact, labels
    t0 = time.perf_counter()
    att, acc = fit_attributor(x, y, parts, ds.models, arch=arch, epochs=epochs, seed=seed, batch_size=batch_size,
                              optimizer=optimizer, device=device, progress=progress, checkpoint=out / "checkpoint.pt",
                              resume=resume, settings=extra, precision=precision, patience=patience)
    test_x, test_y = x[parts["test"]], y[parts["test"]].numpy()
    pred, probs = att.predict(test_x)
    result = {"space": space, "arch": arch, "seed": seed, "accuracy": acc, "models": ds.models}
    if report:
        before = metrics.expected_calibration_error(probs.numpy(), test_y)
        att.calibrate(x[parts["val"]], y[parts["val"]])
        _, probs = att.predict(test_x)
        result["calibration"] = {"temperature": att.temperature, "ece_test_before": before,
                                 "ece_test_after": metrics.expected_calibration_error(probs.numpy(), test_y)}
        att.fit_open_set(x[parts["val"]], open_set_score, keep, x[parts["train"]], y[parts["train"]])
        result["open_set"] = att.open_set
    cm = metrics.confusion_matrix(pred.numpy(), test_y, len(ds.models))
    att.save(out / "model.pt", extra={**extra, "seed": seed})
    result.update({"confusion": cm.tolist(), "train_seconds": time.perf_counter() - t0,
                   "sizes": {k: len(v) for k, v in parts.items()}, "identical_excluded": int((~keep_rows).sum()),
                   "history": att.history})
    if figures:
        viz.confusion_figure(cm, ds.models, out / "confusion.png", title=f"ManiFPT {space}: {100 * acc:.1f}%")
        result["figures"] = ["confusion.png"]
    return save_result(out, result)
