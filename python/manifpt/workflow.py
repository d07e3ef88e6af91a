"""The attribution workflow on a GM folder, as functions (the `artifacts`, `fit`, `predict` and
`evaluate` commands): each returns a plain dict, also written as OUT/results.json, and writes its
figures into OUT.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from . import metrics, viz
from .attribute import Attributor
from .data import ImageFolderGM, list_images, load_images
from .experiments.steps import (DEFAULT_SIZE, drop_identical, fit_and_report, load_dataset, save_result,
                                space_artifacts)
from .artifact_build import build_store, write_in_ram
from .artifact_store import ArtifactStore, Rows
from .io import atomic_write_text
from .manifold import RealManifold
from .spaces import get_embedder


def run_artifacts(data, space, out: Path, *, size=DEFAULT_SIZE, weights=None, neighbour_space=None, skip_bad=False,
                  device="cpu", progress=True, per_model=None, memory_budget=None) -> dict:
    """Artifacts, labels, nearest-real indices and distances of every generated image, as an artifact store
    (artifact_store.py: .npy files + store.json, for `fit --artifacts`), the FD ratio of the artifacts
    across models, and a figure of one (fake, nearest real, artifact) triplet per model. With
    `memory_budget` (bytes), the store is built chunk by chunk within it (artifact_build.build_store) and
    the FD ratio is taken on a seeded subset of at most FDR_ROWS rows per model."""
    out = Path(out)
    if memory_budget is not None:
        if skip_bad:
            raise ValueError("--skip-bad with --memory-budget: the streamed store has one row per image; fix or remove "
                             "the unreadable images (they are listed without --memory-budget --skip-bad)")
        return _artifacts_streamed(data, space, out, size=size, weights=weights, neighbour_space=neighbour_space,
                                   device=device, progress=progress, per_model=per_model, memory_budget=memory_budget)
    d = load_dataset(data, size, skip_bad, per_model=per_model)
    ds, fakes, labels = d.ds, d.fakes, d.labels
    manifold, art = space_artifacts(d, space, weights=weights, neighbour_space=neighbour_space, device=device,
                                    cache_dir=out / "cache", progress=progress)
    write_in_ram(out, art, labels, list(ds.models), {"space": space, "neighbour_space": neighbour_space or space,
                 "size": size, "data": str(Path(data).resolve()), "weights": None if weights is None else str(weights),
                 "per_model": per_model})
    a, y, n_identical = drop_identical(art, labels)
    if len(ds.models) >= 2:
        fdr = metrics.fd_ratio(a.numpy(), y.numpy())
    else:  # a ratio of between-model over within-model distances needs two models
        fdr = {"fdr": None, "reason": f"{data} has one model ({ds.models[0]}): the FD ratio compares two or more"}
    per_model = []
    for k, name in enumerate(ds.models):
        m = labels == k
        per_model.append({"model": name, "images": int(m.sum()), "mean_distance": float(art.distance[m].mean()),
                          "identical_to_a_real": int((art.identical & m).sum())})
    pick = [int(torch.nonzero(labels == k)[0]) for k in range(len(ds.models))]
    arts = {space: art.artifact[pick]} if art.artifact.dim() == 4 and art.artifact.shape[1] == 3 else {}
    if space != "rgb":
        arts["rgb"] = fakes[pick] - manifold.rgb[art.index[pick]]
    viz.triplet_figure(fakes[pick], manifold.rgb[art.index[pick]], arts, list(ds.models), out / "triplets.png")
    return save_result(out, {"space": space, "neighbour_space": neighbour_space or space, "models": per_model,
                             "identical_excluded": n_identical, "fdr": fdr, "figures": ["triplets.png"]})


FDR_ROWS = 2000


def _artifacts_streamed(data, space, out: Path, *, memory_budget, progress, **kw) -> dict:
    meta = build_store(data, space, out, memory_budget=memory_budget, progress=progress, **kw)
    store = ArtifactStore(out)
    reader = store.reader()
    keep = ~store.identical
    g = torch.Generator().manual_seed(0)
    pick = []
    for k in range(len(store.models)):
        rows = torch.nonzero((store.labels == k) & keep).flatten()
        pick.append(rows[torch.randperm(len(rows), generator=g)[:FDR_ROWS]].sort().values)
    pick = torch.cat(pick)
    sample = Rows(reader, store.labels, pick)
    if len(store.models) >= 2:
        fdr = metrics.fd_ratio(sample.x(torch.arange(len(sample))).numpy(), sample.y().numpy())
        fdr["rows"] = len(sample)
    else:
        fdr = {"fdr": None, "reason": f"{data} has one model ({store.models[0]}): the FD ratio compares two or more"}
    per_model = []
    for k, name in enumerate(store.models):
        m = store.labels == k
        per_model.append({"model": name, "images": int(m.sum()), "mean_distance": float(store.distance[m].double().mean()),
                          "identical_to_a_real": int((store.identical & m).sum())})
    return save_result(out, {"space": space, "neighbour_space": meta["neighbour_space"], "models": per_model,
                             "identical_excluded": int(store.identical.sum()), "fdr": fdr, "figures": [],
                             "memory_budget": memory_budget, "chunk": meta["chunk"]})


def run_fit(data, space, out: Path, *, arch="small", epochs=30, seed=0, batch_size=64, optimizer="adamw", resume=False,
            size=DEFAULT_SIZE, weights=None, neighbour_space=None, skip_bad=False, device="cpu", progress=True,
            open_set_score="energy", keep=0.95, per_model=None, precision="auto", patience=5) -> dict:
    """An attributor on the artifacts of `space` (steps.fit_and_report). With `resume`, OUT/checkpoint.pt
    continues only if it was written for the same data, space and settings."""
    out = Path(out)
    d = load_dataset(data, size, skip_bad, per_model=per_model)
    _, art = space_artifacts(d, space, weights=weights, neighbour_space=neighbour_space, device=device,
                             cache_dir=out / "cache", progress=progress)
    extra = {"space": space, "data": str(Path(data).resolve()), "size": size,
             "weights": None if weights is None else str(weights), "neighbour_space": neighbour_space, "per_model": per_model}
    return fit_and_report(d.ds, art, d.labels, d.positions, out, space=space, arch=arch, epochs=epochs, seed=seed,
                          batch_size=batch_size, optimizer=optimizer, resume=resume, device=device, progress=progress,
                          open_set_score=open_set_score, keep=keep, extra=extra, precision=precision,
                          patience=patience)


def _model_manifold(model_path: Path, device: str, data_override=None, skip_bad: bool = False):
    att, extra = Attributor.load(model_path, device=device)
    missing = [k for k in ("space", "size") if k not in extra]
    if missing:
        raise ValueError(f"{model_path} does not say which {' and '.join(missing)} it was trained on: it was not written "
                         "by `manifpt fit`")
    data = data_override or extra.get("data")
    if not data:
        raise ValueError(f"{model_path} does not say which real images it was trained against: pass --data ROOT")
    ds = ImageFolderGM(data, size=extra["size"])
    embedder = get_embedder(extra["space"], weights=extra.get("weights"), device=device)
    reals, _ = ds.load_reals(skip_bad=skip_bad)
    cache = Path(model_path).parent / "cache"
    return att, extra, ds, RealManifold(embedder, reals, cache_dir=cache)


PREDICTION_COLUMNS = ("path", "predicted", "probability", "unknown", "nearest_known", "nearest_real_index",
                      "nearest_real_distance", "identical_to_a_real")


def run_predict(model: Path, images: list[Path], out: Path, *, device="cpu", data=None, open_set=True,
                skip_bad=False) -> dict:
    """The model each image comes from (or "unknown", with the open-set threshold of `fit`), with its
    probability and nearest real; results.json and predictions.csv (one row per image, for other tools)."""
    files = []
    for p in images:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"manifpt predict: {p} does not exist")
        files += list_images(p) if p.is_dir() else [p]
    if not files:
        raise ValueError("manifpt predict: no images given (the folders hold no .png/.jpg/.jpeg/.webp files)")
    att, extra, _, manifold = _model_manifold(model, device, data, skip_bad)
    x, kept = load_images(files, extra["size"], skip_bad=skip_bad)
    skipped = [str(f) for i, f in enumerate(files) if i not in set(kept)]
    files = [files[i] for i in kept]
    if not files:
        raise ValueError(f"manifpt predict: none of the {len(skipped)} images could be read")
    art = manifold.artifacts(x, neighbour_space=extra.get("neighbour_space"))
    open_set = open_set and att.open_set is not None
    labels, probs = att.predict(art.artifact, open_set=open_set)
    names = att.config["class_names"]
    best = probs.argmax(dim=1)
    rows = [{"file": str(f), "predicted": "unknown" if int(k) < 0 else names[int(k)],
             "nearest_known": names[int(best[i])], "probability": float(probs[i, best[i]]), "unknown": int(k) < 0,
             "nearest_real_index": int(art.index[i]), "nearest_real_distance": float(art.distance[i]),
             "identical_to_a_real": bool(art.identical[i])} for i, (f, k) in enumerate(zip(files, labels))]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(PREDICTION_COLUMNS)
    for r in rows:
        w.writerow([r["file"], *(r[c] for c in PREDICTION_COLUMNS[1:])])
    atomic_write_text(Path(out) / "predictions.csv", buf.getvalue())
    return save_result(out, {"model": str(model), "space": extra["space"], "open_set": att.open_set if open_set else None,
                             "temperature": att.temperature, "predictions": rows, "skipped": skipped})


def run_evaluate(model: Path, data: Path, out: Path, *, device="cpu", skip_bad=False) -> dict:
    """Accuracy and confusion matrix of a trained attributor on every generated image of a GM folder."""
    att, extra, ds, manifold = _model_manifold(model, device, data, skip_bad)
    names = att.config["class_names"]
    if ds.models != names:
        raise ValueError(f"{data} has models {ds.models}, but the attributor was trained on {names}")
    fakes, labels, _ = ds.load(list(range(len(ds.files))), skip_bad=skip_bad)
    art = manifold.artifacts(fakes, neighbour_space=extra.get("neighbour_space"))
    a, y, n_identical = drop_identical(art, labels)
    pred, _ = att.predict(a)
    cm = metrics.confusion_matrix(pred.numpy(), y.numpy(), len(names))
    acc = metrics.accuracy(pred.numpy(), y.numpy())
    viz.confusion_figure(cm, names, Path(out) / "confusion.png", title=f"{extra['space']}: {100 * acc:.1f}%")
    return save_result(out, {"model": str(model), "data": str(data), "accuracy": acc, "confusion": cm.tolist(),
                             "models": names, "identical_excluded": n_identical, "figures": ["confusion.png"]})
