"""`manifpt fit --artifacts DIR` and `manifpt evaluate --artifacts DIR`: train and score from an artifact
store on disk (artifact_store.py), in one process or under torchrun, never loading the artifacts whole.

- The split is `stratified_split(labels, seed)` over the store's rows, as `ImageFolderGM.split` splits
  the same files, minus the rows whose artifact is zero (`identical`).
- Training reads batches through a DataLoader (`--workers`, pinned memory on CUDA); validation, test,
  calibration and the open-set threshold read the rows in chunks that fit `--memory-budget`. The
  fingerprint open-set score fits its PCA on at most FINGERPRINT_ROWS training rows (seeded), since an
  SVD of every artifact is what does not fit.
- Under torchrun every rank trains (train.train shards the batches); rank 0 alone writes checkpoint.pt,
  model.pt, results.json and the figure.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from . import heap, metrics, viz
from .artifact_store import ArtifactStore, Rows, chunk_rows
from .attribute import SCORE_ROWS, Attributor
from .data.folder import stratified_split
from .distributed import rank_world
from .io import atomic_write_json

FINGERPRINT_ROWS = 4096


def store_parts(store: ArtifactStore, seed: int) -> dict[str, torch.Tensor]:
    keep = ~store.identical
    return {k: torch.tensor([r for r in v if keep[r]], dtype=torch.long)
            for k, v in stratified_split(store.labels.tolist(), seed).items()}


def fit_store(folder: Path, out: Path, *, arch="small", epochs=30, seed=0, batch_size=64, optimizer="adamw", resume=False,
              device="cpu", progress=True, open_set_score="energy", keep=0.95, workers=0, memory_budget=None,
              precision="auto", in_ram=False, patience=5) -> dict:
    """`in_ram`: the artifacts loaded whole into a tensor first (the benchmark's reference for the disk path)."""
    heap.fix_mmap_threshold()  # the budget holds only if the training steps do not fragment the heap (heap.py)
    store = ArtifactStore(folder)
    rank, world = rank_world()
    out = Path(out)
    parts = store_parts(store, seed)
    reader = store.reader()
    source = torch.from_numpy(np.load(store.path)) if in_ram else reader
    rows = {k: Rows(source, store.labels, v) for k, v in parts.items()}
    att = Attributor(len(store.models), store.shape[1:], arch=arch, epochs=epochs, seed=seed, batch_size=batch_size,
                     optimizer=optimizer, device=device, class_names=store.models, precision=precision,
                     patience=patience)
    _check_budget(att, reader.row_bytes, workers, memory_budget)
    extra = {"space": store.meta.get("space"), "artifacts": str(Path(folder).resolve()), "size": store.meta.get("size"),
             "data": store.meta.get("data"), "weights": store.meta.get("weights"),
             "neighbour_space": store.meta.get("neighbour_space"), "rows": store.shape[0]}
    t0 = time.perf_counter()
    att.fit(rows["train"], x_val=rows["val"], checkpoint=out / "checkpoint.pt" if rank == 0 else None, resume=resume,
            progress=progress, settings=extra, workers=workers, memory_budget=memory_budget)
    seconds = time.perf_counter() - t0
    result = {"space": extra["space"], "arch": arch, "seed": seed, "models": store.models, "world_size": world,
              "precision": "bf16" if att.amp else "fp32", "train_seconds": seconds,
              "sizes": {k: len(v) for k, v in parts.items()}, "identical_excluded": int(store.identical.sum()),
              "history": att.history}
    if rank != 0:
        return result
    chunk = min(SCORE_ROWS, chunk_rows(reader.row_bytes, memory_budget))
    test_y = rows["test"].y().numpy()
    pred, probs = att.predict(rows["test"], batch_size=chunk)
    acc = metrics.accuracy(pred.numpy(), test_y)
    before = metrics.expected_calibration_error(probs.numpy(), test_y)
    att.calibrate(rows["val"], rows["val"].y())
    _, probs = att.predict(rows["test"], batch_size=chunk)
    result["calibration"] = {"temperature": att.temperature, "ece_test_before": before,
                             "ece_test_after": metrics.expected_calibration_error(probs.numpy(), test_y)}
    sub = rows["train"]
    if open_set_score == "fingerprint" and len(sub) > FINGERPRINT_ROWS:
        pick = torch.randperm(len(sub), generator=torch.Generator().manual_seed(seed))[:FINGERPRINT_ROWS].sort().values
        sub = sub.subset(pick)
    fx = sub.x(torch.arange(len(sub))) if open_set_score == "fingerprint" else None
    att.fit_open_set(rows["val"], open_set_score, keep, fx, sub.y() if fx is not None else None)
    result["open_set"] = att.open_set
    cm = metrics.confusion_matrix(pred.numpy(), test_y, len(store.models))
    att.save(out / "model.pt", extra={**extra, "seed": seed})
    viz.confusion_figure(cm, store.models, out / "confusion.png", title=f"ManiFPT {extra['space']}: {100 * acc:.1f}%")
    result.update({"accuracy": acc, "confusion": cm.tolist(), "figures": ["confusion.png"],
                   "rows_read": reader.rows_read, "largest_read": reader.largest_read})
    atomic_write_json(out / "results.json", result)
    return result


def evaluate_store(model: Path, folder: Path, out: Path, *, device="cpu", memory_budget=None) -> dict:
    """Accuracy and confusion matrix of a trained attributor on every (non-zero) artifact of a store."""
    att, extra = Attributor.load(model, device=device)
    store = ArtifactStore(folder)
    names = att.config["class_names"]
    if store.models != names:
        raise ValueError(f"--artifacts {folder} has models {store.models}, but the attributor was trained on {names}")
    reader = store.reader()
    rows = Rows(reader, store.labels, torch.nonzero(~store.identical).flatten())
    pred, _ = att.predict(rows, batch_size=min(SCORE_ROWS, chunk_rows(reader.row_bytes, memory_budget)))
    y = rows.y().numpy()
    cm = metrics.confusion_matrix(pred.numpy(), y, len(names))
    acc = metrics.accuracy(pred.numpy(), y)
    viz.confusion_figure(cm, names, Path(out) / "confusion.png", title=f"{extra.get('space')}: {100 * acc:.1f}%")
    result = {"model": str(model), "artifacts": str(folder), "accuracy": acc, "confusion": cm.tolist(), "models": names,
              "identical_excluded": int(store.identical.sum()), "figures": ["confusion.png"],
              "rows_read": reader.rows_read, "largest_read": reader.largest_read}
    atomic_write_json(Path(out) / "results.json", result)
    return result


def _check_budget(att: Attributor, row_bytes: int, workers: int, memory_budget: int | None) -> None:
    """Batches in flight (the step's, plus two per worker ahead of it) must fit the budget."""
    if workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")
    if memory_budget is None:
        return
    need = att.config["batch_size"] * row_bytes * (2 + 2 * workers)
    if need > memory_budget:
        raise ValueError(f"--memory-budget {memory_budget} bytes is below the {need} bytes of batches in flight "
                         f"(--batch-size {att.config['batch_size']} x {row_bytes} bytes x (2 + 2 x --workers {workers}))")
