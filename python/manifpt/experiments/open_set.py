"""Open set: attributing images of generators the attributor has never seen (leave one model out).

Each generator in turn is held out of training. The attributor is trained on the others, calibrated on
their validation images, and given an open-set threshold that keeps `keep` (95%) of those validation
images. Reported: the AUROC of known test images against all images of the held-out generator, the
closed-set accuracy on the known test images, and the shares of unknown images flagged and of known
images rejected at that threshold.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import metrics
from .steps import DEFAULT_SIZE, fit_attributor, fit_baseline, load_dataset, pct, save_result, space_artifacts, split_rows

SUMMARY_COLUMNS = [("method", "method"), ("AUROC", lambda x: f"{x['auroc']:.3f}"),
                   ("closed-set accuracy %", lambda x: pct(x["closed_set_accuracy"])),
                   ("unknown flagged %", lambda x: pct(x["unknown_detected"])),
                   ("known rejected %", lambda x: pct(x["known_rejected"]))]


def run_open_set(data, out: Path, *, spaces=("rgb", "freq"), baselines=(), baseline_preset="cpu", method="energy", keep=0.95,
                 seed=0, arch="small", epochs=30, batch_size=64, size=DEFAULT_SIZE, weights=None, skip_bad=False, device="cpu",
                 progress=True, per_model=None) -> dict:
    if not 0 < keep <= 1:
        raise ValueError(f"--keep must be in (0, 1], got {keep}")
    out = Path(out)
    d = load_dataset(data, size, skip_bad, per_model=per_model)
    ds, fakes, labels = d.ds, d.fakes, d.labels
    if len(ds.models) < 3:
        raise ValueError(f"open-set needs at least 3 models (2 known + 1 held out), {data} has {len(ds.models)}")
    parts = split_rows(ds, seed, d.positions)
    rows = []
    artifacts = {s: space_artifacts(d, s, weights=weights, device=device, cache_dir=out / "cache",
                                    progress=progress)[1].artifact for s in spaces}
    for held in range(len(ds.models)):
        known = [k for k in range(len(ds.models)) if k != held]
        relabel = torch.full((len(ds.models),), -1, dtype=torch.long)
        relabel[known] = torch.arange(len(known))
        sel = {k: v[labels[v] != held] for k, v in parts.items()}
        unknown = torch.nonzero(labels == held).flatten()
        y = relabel[labels]
        names = [ds.models[k] for k in known]
        for space, a in artifacts.items():
            att, acc = fit_attributor(a, y, sel, names, arch=arch, epochs=epochs, seed=seed, batch_size=batch_size,
                                      device=device, progress=progress)
            att.calibrate(a[sel["val"]], y[sel["val"]])
            att.fit_open_set(a[sel["val"]], method, keep, a[sel["train"]], y[sel["train"]])
            rows.append(_row(f"ManiFPT {space}", ds.models[held], att.open_set_scores(a[sel["test"]]),
                             att.open_set_scores(a[unknown]), att.open_set["threshold"], acc))
        for name in baselines:
            b, acc = fit_baseline(name, fakes, y, sel, preset=baseline_preset, size=size, epochs=epochs, seed=seed,
                                  device=device, progress=progress, reals=d.reals)
            threshold = float(np.quantile(b.confidence(fakes[sel["val"]]), 1 - keep))
            rows.append(_row(name, ds.models[held], b.confidence(fakes[sel["test"]]), b.confidence(fakes[unknown]),
                             threshold, acc))
    summary = []
    for m in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == m]
        summary.append({"method": m, **{k: float(np.mean([r[k] for r in mine]))
                                        for k in ("auroc", "closed_set_accuracy", "unknown_detected", "known_rejected")}})
    return save_result(out, {"experiment": "open-set", "data": str(data), "score": method, "keep": keep, "rows": rows,
                             "summary": summary})


def _row(method, held_out, s_known, s_unknown, threshold, accuracy) -> dict:
    s_known, s_unknown = np.asarray(s_known, np.float64), np.asarray(s_unknown, np.float64)
    return {"method": method, "held_out": held_out, "auroc": metrics.auroc(s_known, s_unknown),
            "closed_set_accuracy": accuracy, "unknown_detected": float((s_unknown < threshold).mean()),
            "known_rejected": float((s_known < threshold).mean())}
