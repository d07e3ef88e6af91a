"""What the CLI commands do, as functions: artifacts of a dataset, fitting an attributor, predicting,
evaluating, and the paper's model-type attribution experiment (Table 1: ManiFPT and the baselines).

Every function returns a plain dict (also written as results.json), and writes figures into `out`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import manifpt_ext

from . import metrics, viz
from .attribute import Attributor
from .data import ImageFolderGM, list_images, load_images, stratified_split
from .embed import get_embedder
from .io import atomic_save_npy, atomic_write_json
from .manifold import Artifacts, RealManifold

DEFAULT_SIZE = 32
PIXEL_CONTROL = "control: images"  # model-type's row of the attributor on the images, not their artifacts


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


def load_dataset(data: Path, size: int = DEFAULT_SIZE, skip_bad: bool = False, where: dict | None = None) -> Loaded:
    ds = ImageFolderGM(data, size=size, where=where)
    reals, _ = ds.load_reals(skip_bad=skip_bad)
    return Loaded(ds, reals, *ds.load_all(skip_bad=skip_bad))


def space_artifacts(d: Loaded, space: str, *, weights=None, neighbour_space=None, device: str = "cpu",
                    cache_dir: Path | None = None, progress: bool = True):
    """The real manifold of `space` and the artifacts of every generated image: (manifold, Artifacts)."""
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


def _drop_identical(art, labels):
    keep = ~art.identical
    return art.artifact[keep], labels[keep], int((~keep).sum())


def run_artifacts(data, space, out: Path, *, size=DEFAULT_SIZE, weights=None, neighbour_space=None, skip_bad=False,
                  device="cpu", progress=True) -> dict:
    out = Path(out)
    d = load_dataset(data, size, skip_bad)
    ds, fakes, labels = d.ds, d.fakes, d.labels
    manifold, art = space_artifacts(d, space, weights=weights, neighbour_space=neighbour_space, device=device,
                                    cache_dir=out / "cache", progress=progress)
    atomic_save_npy(out / "artifacts.npy", art.artifact.numpy())
    atomic_save_npy(out / "labels.npy", labels.numpy())
    atomic_save_npy(out / "index.npy", art.index.numpy())
    a, y, n_identical = _drop_identical(art, labels)
    fdr = metrics.fd_ratio(a.numpy(), y.numpy())
    per_model = []
    for k, name in enumerate(ds.models):
        m = labels == k
        per_model.append({"model": name, "images": int(m.sum()), "mean_distance": float(art.distance[m].mean()),
                          "identical_to_a_real": int((art.identical & m).sum())})
    pick = [int(torch.nonzero(labels == k)[0]) for k in range(len(ds.models))]
    arts = {space: art.artifact[pick]} if art.artifact.dim() == 4 and art.artifact.shape[1] == 3 else {}
    if space != "rgb":
        arts["rgb"] = fakes[pick] - manifold.rgb[art.index[pick]]
    viz.triplet_figure(fakes[pick], manifold.rgb[art.index[pick]], arts, [ds.models[k] for k in range(len(ds.models))],
                       out / "triplets.png")
    result = {"space": space, "neighbour_space": neighbour_space or space, "models": per_model,
              "identical_excluded": n_identical, "fdr": fdr, "figures": ["triplets.png"]}
    atomic_write_json(out / "results.json", result)
    return result


def run_fit(data, space, out: Path, *, arch="small", epochs=30, seed=0, batch_size=64, optimizer="adamw", resume=False,
            size=DEFAULT_SIZE, weights=None, neighbour_space=None, skip_bad=False, device="cpu", progress=True,
            open_set_score="energy", keep=0.95) -> dict:
    out = Path(out)
    d = load_dataset(data, size, skip_bad)
    _, art = space_artifacts(d, space, weights=weights, neighbour_space=neighbour_space, device=device,
                             cache_dir=out / "cache", progress=progress)
    return _fit_eval(d.ds, art, d.labels, d.positions, out, space=space, arch=arch, epochs=epochs, seed=seed, batch_size=batch_size,
                     optimizer=optimizer, resume=resume, device=device, progress=progress, open_set_score=open_set_score,
                     keep=keep, extra={"space": space, "data": str(Path(data).resolve()), "size": size,
                            "weights": None if weights is None else str(weights), "neighbour_space": neighbour_space})


def _fit_eval(ds, art, labels, positions, out, *, space, arch, epochs, seed, batch_size, optimizer, resume, device, progress, extra,
              figures=True, open_set_score="energy", keep=0.95) -> dict:
    keep_rows = ~art.identical
    parts = split_rows(ds, seed, positions, keep_rows)
    x, y = art.artifact, labels
    att = Attributor(len(ds.models), tuple(x.shape[1:]), arch=arch, epochs=epochs, seed=seed, batch_size=batch_size,
                     optimizer=optimizer, device=device, class_names=ds.models)
    t0 = time.perf_counter()
    att.fit(x[parts["train"]], y[parts["train"]], x[parts["val"]], y[parts["val"]], checkpoint=out / "checkpoint.pt",
            resume=resume, progress=progress)
    test_y = y[parts["test"]].numpy()
    before = metrics.expected_calibration_error(att.predict(x[parts["test"]])[1].numpy(), test_y)
    att.calibrate(x[parts["val"]], y[parts["val"]])
    pred, probs = att.predict(x[parts["test"]])
    calibration = {"temperature": att.temperature, "ece_test_before": before,
                   "ece_test_after": metrics.expected_calibration_error(probs.numpy(), test_y)}
    att.fit_open_set(x[parts["val"]], open_set_score, keep, x[parts["train"]], y[parts["train"]])
    acc = metrics.accuracy(pred.numpy(), test_y)
    cm = metrics.confusion_matrix(pred.numpy(), y[parts["test"]].numpy(), len(ds.models))
    att.save(out / "model.pt", extra={**extra, "seed": seed})
    result = {"space": space, "arch": arch, "seed": seed, "accuracy": acc, "confusion": cm.tolist(), "models": ds.models,
              "train_seconds": time.perf_counter() - t0, "sizes": {k: len(v) for k, v in parts.items()},
              "identical_excluded": int((~keep_rows).sum()), "history": att.history, "calibration": calibration,
              "open_set": att.open_set}
    if figures:
        viz.confusion_figure(cm, ds.models, out / "confusion.png", title=f"ManiFPT {space}: {100 * acc:.1f}%")
        result["figures"] = ["confusion.png"]
    atomic_write_json(out / "results.json", result)
    return result


def _model_manifold(model_path: Path, device: str, data_override=None):
    att, extra = Attributor.load(model_path, device=device)
    data = data_override or extra.get("data")
    if not data:
        raise ValueError(f"{model_path} does not say which real images it was trained against: pass --data ROOT")
    ds = ImageFolderGM(data, size=extra["size"])
    embedder = get_embedder(extra["space"], weights=extra.get("weights"), device=device)
    reals, _ = ds.load_reals()
    cache = Path(model_path).parent / "cache"
    return att, extra, ds, RealManifold(embedder, reals, cache_dir=cache)


def run_predict(model: Path, images: list[Path], out: Path, *, device="cpu", data=None, open_set=True) -> dict:
    att, extra, _, manifold = _model_manifold(model, device, data)
    files = []
    for p in images:
        files += list_images(p) if Path(p).is_dir() else [Path(p)]
    if not files:
        raise ValueError("manifpt predict: no images given")
    x, _ = load_images(files, extra["size"])
    art = manifold.artifacts(x, neighbour_space=extra.get("neighbour_space"))
    open_set = open_set and att.open_set is not None
    labels, probs = att.predict(art.artifact, open_set=open_set)
    names = att.config["class_names"]
    best = probs.argmax(dim=1)
    rows = [{"file": str(f), "predicted": "unknown" if int(k) < 0 else names[int(k)],
             "nearest_known": names[int(best[i])], "probability": float(probs[i, best[i]]),
             "identical_to_a_real": bool(art.identical[i])} for i, (f, k) in enumerate(zip(files, labels))]
    result = {"model": str(model), "space": extra["space"], "open_set": att.open_set if open_set else None,
              "temperature": att.temperature, "predictions": rows}
    atomic_write_json(Path(out) / "results.json", result)
    return result


def run_evaluate(model: Path, data: Path, out: Path, *, device="cpu") -> dict:
    att, extra, ds, manifold = _model_manifold(model, device, data)
    names = att.config["class_names"]
    if ds.models != names:
        raise ValueError(f"{data} has models {ds.models}, but the attributor was trained on {names}")
    fakes, labels, _ = ds.load(list(range(len(ds.files))))
    art = manifold.artifacts(fakes, neighbour_space=extra.get("neighbour_space"))
    a, y, n_identical = _drop_identical(art, labels)
    pred, _ = att.predict(a)
    cm = metrics.confusion_matrix(pred.numpy(), y.numpy(), len(names))
    acc = metrics.accuracy(pred.numpy(), y.numpy())
    viz.confusion_figure(cm, names, Path(out) / "confusion.png", title=f"{extra['space']}: {100 * acc:.1f}%")
    result = {"model": str(model), "data": str(data), "accuracy": acc, "confusion": cm.tolist(), "models": names,
              "identical_excluded": n_identical, "figures": ["confusion.png"]}
    atomic_write_json(Path(out) / "results.json", result)
    return result


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
    from .baselines import BASELINES
    from .baselines.base import SklearnBaseline

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


def run_model_type(data, out: Path, *, spaces=("rgb", "freq"), seeds=3, arch="small", epochs=30, batch_size=64,
                   size=DEFAULT_SIZE, weights=None, neighbour_space=None, skip_bad=False, device="cpu", progress=True,
                   baselines=(), baseline_preset="cpu", baseline_args: dict | None = None, where: dict | None = None,
                   resume: bool = False, pixel_control: bool = False) -> dict:
    """Table 1: for each space (ManiFPT) and each baseline, the test accuracy mean +- std over seeds
    (each seed its own split and initialisation) and the FD ratio over all generated images: of the
    artifacts (ManiFPT), or of the baseline's features (its seed-0 model). Also t-SNE panels of the
    pixels, each space's artifacts and each baseline's features (Fig. 1). `where` (e.g. {"training_set":
    "photo"}) keeps the models whose models.csv row matches: the paper compares models of one training set.
    `baseline_args` ({name: {param: value}}) overrides constructor arguments of the preset. `pixel_control`
    adds a row of ManiFPT's attributor trained, with the same splits and seeds, on the images themselves.

    progress.json in `out` holds every finished row and seed (and features.npy files the seed-0 baseline
    features, for the t-SNE panels); `resume` continues from there, down to the epoch of an
    attributor's checkpoint. A baseline's seed that was cut off is fitted again from its start."""
    from .baselines import make_baseline

    out = Path(out)
    baseline_args = baseline_args or {}
    for name, overrides in baseline_args.items():  # a typo fails now, not after an hour of other baselines
        try:
            make_baseline(name, **baseline_params(name, baseline_preset, size, epochs, 0, device, overrides=overrides))
        except TypeError as e:
            raise ValueError(f"baseline arguments {overrides} of {name}: {e}") from None
    rows, panels, triplet_arts = [], {}, {}
    triplet_rows = nearest = None
    d = load_dataset(data, size, skip_bad, where)  # decoded once for every space and baseline
    ds, fakes, labels, positions = d.ds, d.fakes, d.labels, d.positions
    prev = resume_state(out / "progress.json", {
        "data": str(Path(data).resolve()), "where": where, "models": ds.models, "images": len(labels), "size": size,
        "spaces": spaces, "weights": weights, "neighbour_space": neighbour_space, "seeds": seeds, "arch": arch,
        "epochs": epochs, "batch_size": batch_size, "baselines": baselines, "baseline_preset": baseline_preset,
        "baseline_args": baseline_args, "pixel_control": pixel_control}, resume)
    finished = {(r["method"], r["space"]): r for r in prev["rows"]}

    def done_seeds(method, space):  # (accuracies, fdr) of the seeds an interrupted run finished for this row
        run = prev["running"] or {}
        if (run.get("method"), run.get("space")) == (method, space):
            return list(run["accuracies"]), run.get("fdr")
        return [], None

    def checkpoint(method, space, accs, fdr=None):  # a full run is hours: every finished seed is on disk at once
        atomic_write_json(out / "progress.json", {"settings": prev["settings"], "rows": rows, "running": {
            "method": method, "space": space, "accuracies": accs, "fdr": fdr}})

    def attributor_row(method, space, art, w):  # the attributor over seeds on `art`; returns its kept rows
        row = finished.get((method, space))
        accs = row["accuracies"] if row else done_seeds(method, space)[0]
        for seed in range(len(accs), seeds):
            r = _fit_eval(ds, art, labels, positions, out / space / f"seed{seed}", space=space, arch=arch, epochs=epochs, seed=seed,
                          batch_size=batch_size, optimizer="adamw", resume=prev["resumed"],  # checkpoints of these settings only
                          device=device, progress=progress,
                          extra={"space": space, "data": str(Path(data).resolve()), "size": size,
                                 "weights": None if w is None else str(w), "neighbour_space": neighbour_space},
                          figures=seed == 0)
            accs.append(r["accuracy"])
            checkpoint(method, space, accs)
        a, y, _ = _drop_identical(art, labels)
        mean, std = metrics.mean_std(accs)
        rows.append({"method": method, "space": space, "accuracy_mean": mean, "accuracy_std": std,
                     "accuracies": accs, "fdr": row["fdr"] if row else metrics.fd_ratio(a.numpy(), y.numpy())["fdr"]})
        return a, y

    panels["pixels"] = (fakes.numpy(), labels.numpy())
    identical = torch.zeros(len(fakes), dtype=torch.bool)  # copies of a real, left out of every row that has them
    for space in spaces:
        w = weights.get(space) if isinstance(weights, dict) else weights
        manifold, art = space_artifacts(d, space, weights=w, neighbour_space=neighbour_space, device=device,
                                        cache_dir=out / "cache", progress=progress)
        a, y = attributor_row("ManiFPT", space, art, w)
        identical = art.identical
        panels[f"artifacts ({space})"] = (a.numpy(), y.numpy())
        if space == "sl":  # Fig. 1's "ImageNet features" panel: the images' own embedding, artifact + nearest real
            panels["ImageNet features"] = ((art.artifact + manifold.embedded[art.index]).cpu().numpy(), labels.numpy())
        if art.artifact.dim() == 4 and art.artifact.shape[1] == 3:  # image-shaped: shown in the triplets
            if triplet_rows is None:  # one image per model, with its RGB nearest real
                triplet_rows = [int(torch.nonzero(labels == k)[0]) for k in range(len(ds.models))]
                nearest = manifold.rgb[manifpt_ext.project(fakes[triplet_rows], manifold.rgb).index]
            triplet_arts[space] = art.artifact[triplet_rows]
    if pixel_control:  # the same attributor, splits and seeds on the images: what subtracting the nearest real adds
        n = len(fakes)
        attributor_row(PIXEL_CONTROL, "pixels", Artifacts(fakes, torch.zeros(n, dtype=torch.long), torch.zeros(n), identical), None)
    for name in baselines:
        row = finished.get((name, "-"))
        accs, fdr = (row["accuracies"], row["fdr"]) if row else done_seeds(name, "-")
        features = out / "features" / f"{name}.npy"  # seed 0's features of all generated images
        if accs:  # seed 0 finished: its features are on disk
            panels[f"{name} features"] = (np.load(features, allow_pickle=False), labels.numpy())
        for seed in range(len(accs), seeds):
            split = split_rows(ds, seed, positions)
            b = make_baseline(name, **baseline_params(name, baseline_preset, size, epochs, seed, device, progress,
                                                      overrides=baseline_args.get(name)))
            b.fit(fakes[split["train"]], labels[split["train"]], fakes[split["val"]], labels[split["val"]])
            test_x, test_y = fakes[split["test"]], labels[split["test"]].numpy()
            accs.append(metrics.accuracy(b.predict(test_x), test_y))
            if seed == 0:  # FDR and t-SNE over all generated images, as for the artifacts
                feats = b.features(fakes)
                fdr = metrics.fd_ratio(feats, labels.numpy())["fdr"]
                panels[f"{name} features"] = (feats, labels.numpy())
                atomic_save_npy(features, feats)
            checkpoint(name, "-", accs, fdr)
        mean, std = metrics.mean_std(accs)
        rows.append({"method": name, "space": "-", "accuracy_mean": mean, "accuracy_std": std, "accuracies": accs,
                     "fdr": fdr, "preset": baseline_preset, "overrides": baseline_args.get(name, {})})
    order = {"pixels": 0, "ImageNet features": 1}  # then the baselines, then ours, as in Fig. 1
    panels = dict(sorted(panels.items(), key=lambda kv: (order.get(kv[0], 2), kv[0].startswith("artifacts"))))
    viz.tsne_figure(panels, ds.models, out / "tsne.png")
    figures = ["tsne.png"] + [f"{s}/seed0/confusion.png" for s in [*spaces, *["pixels"] * pixel_control]]
    if triplet_arts:
        viz.triplet_figure(fakes[triplet_rows], nearest, triplet_arts, ds.models, out / "triplets.png")
        figures.append("triplets.png")
    result = {"experiment": "model-type", "data": str(data), "where": where, "models": ds.models, "arch": arch, "epochs": epochs,
              "seeds": seeds, "baseline_preset": baseline_preset if baselines else None, "rows": rows,
              "figures": figures, "tsne_panels": list(panels)}
    atomic_write_json(out / "results.json", result)
    return result


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A markdown table of `rows` with (header, key-or-callable) columns."""
    head = "| " + " | ".join(h for h, _ in columns) + " |"
    sep = "|" + "---|" * len(columns)
    body = ["| " + " | ".join(str(f(r) if callable(f) else r[f]) for _, f in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def _acc(x: dict) -> str:
    return f"{_pct(x['accuracy_mean'])} +- {_pct(x['accuracy_std'])}"


# The printed layout of each study's results["rows"] (the CLI and the demo both print these).
TABLE_COLUMNS = {
    "model-type": [("method", "method"), ("space", "space"), ("accuracy % (mean +- std)", _acc),
                   ("FDR", lambda x: "n/a" if x["fdr"] is None else f"{x['fdr']:.2f}")],
    "training-data": [("space", "space"), ("model type", "model_type"), ("training sets", lambda x: ", ".join(x["training_sets"])),
                      ("accuracy % (mean +- std)", _acc), ("chance %", lambda x: _pct(x["chance"]))],
    "layer-type": [("space", "space"), ("factor", "factor"), ("values", lambda x: len(x["values"])),
                   ("NMI", lambda x: f"{x['nmi']:.3f}")],
}


def _factor_column(ds: ImageFolderGM, column: str) -> dict[str, str]:
    if not ds.factors:
        raise ValueError(f"{ds.root} has no models.csv: the experiment needs the design factors of each model")
    missing = [m for m in ds.models if m not in ds.factors]
    if missing:
        raise ValueError(f"{ds.root / 'models.csv'} has no row for {missing}")
    columns = sorted(next(iter(ds.factors.values())))
    if column not in columns:
        raise ValueError(f"{ds.root / 'models.csv'} has no column {column!r}; it has {columns}")
    return {m: ds.factors[m][column] for m in ds.models}


def run_training_data(data, out: Path, *, spaces=("rgb", "freq"), type_column="type", target_column="training_set",
                      seeds=3, arch="small", epochs=30, batch_size=64, size=DEFAULT_SIZE, weights=None, neighbour_space=None,
                      skip_bad=False, device="cpu", progress=True) -> dict:
    """Table 5: for every model type trained on two or more training sets (models.csv: `type_column`,
    `target_column`), the accuracy of predicting the training set from the artifacts, mean +- std over
    seeds. The artifacts are taken against all reals of ROOT/real. Each seed uses its own stratified
    split of that type's images (by training set)."""
    out = Path(out)
    rows = []
    d = load_dataset(data, size, skip_bad)
    ds, labels = d.ds, d.labels
    mtype, target = _factor_column(ds, type_column), _factor_column(ds, target_column)
    for space in spaces:
        _, art = space_artifacts(d, space, weights=weights, neighbour_space=neighbour_space, device=device,
                                 cache_dir=out / "cache", progress=progress)
        for t in sorted(set(mtype.values())):
            models = [m for m in ds.models if mtype[m] == t]
            sets = sorted({target[m] for m in models})
            if len(sets) < 2:
                continue
            model_ids = [ds.models.index(m) for m in models]
            rows_t = torch.tensor([r for r in range(len(labels)) if int(labels[r]) in model_ids and not art.identical[r]])
            y_t = torch.tensor([sets.index(target[ds.models[int(labels[r])]]) for r in rows_t])
            x, accs = art.artifact[rows_t], []
            for seed in range(seeds):
                parts = stratified_split(y_t.tolist(), seed)  # positions within rows_t
                att = Attributor(len(sets), tuple(x.shape[1:]), arch=arch, epochs=epochs, seed=seed, batch_size=batch_size,
                                 device=device, class_names=sets)
                att.fit(x[parts["train"]], y_t[parts["train"]], x[parts["val"]], y_t[parts["val"]], progress=progress)
                pred, _ = att.predict(x[parts["test"]])
                accs.append(metrics.accuracy(pred.numpy(), y_t[parts["test"]].numpy()))
            mean, std = metrics.mean_std(accs)
            rows.append({"space": space, "model_type": t, "training_sets": sets, "models": models, "accuracy_mean": mean,
                         "accuracy_std": std, "accuracies": accs, "chance": 1 / len(sets)})
    if not rows:
        raise ValueError(f"no model type in {data} has models trained on two or more training sets "
                         f"(models.csv columns {type_column!r}, {target_column!r})")
    result = {"experiment": "training-data", "data": str(data), "seeds": seeds, "rows": rows}
    atomic_write_json(out / "results.json", result)
    return result


def run_layer_type(data, out: Path, *, spaces=("rgb", "freq"), factors=None, seed=0, size=DEFAULT_SIZE, weights=None,
                   neighbour_space=None, skip_bad=False, device="cpu", progress=True) -> dict:
    """Table 6: for each space and each design factor of models.csv (or `factors`), the NMI between a
    k-means clustering of the artifacts (k = number of values of the factor) and the factor's value for
    each image. Factors with a single value are skipped."""
    out = Path(out)
    rows = []
    d = load_dataset(data, size, skip_bad)
    ds = d.ds
    for space in spaces:
        _, art = space_artifacts(d, space, weights=weights, neighbour_space=neighbour_space, device=device,
                                 cache_dir=out / "cache", progress=progress)
        a, y, _ = _drop_identical(art, d.labels)
        names = factors or sorted(next(iter(ds.factors.values()), {}))
        for factor in names:
            column = _factor_column(ds, factor)
            values = sorted(set(column.values()))
            if len(values) < 2:
                continue
            f = [values.index(column[ds.models[int(k)]]) for k in y]
            rows.append({"space": space, "factor": factor, "values": values,
                         "nmi": metrics.nmi(a.numpy(), f, seed=seed)})
    if not rows:
        raise ValueError(f"{data}: no design factor with two or more values in models.csv")
    result = {"experiment": "layer-type", "data": str(data), "rows": rows}
    atomic_write_json(out / "results.json", result)
    return result
