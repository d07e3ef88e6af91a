"""Robustness: accuracy under real-world processing of the test images (corruptions.py: JPEG,
rescaling, blur, noise, crops), each method trained once on clean images, or with `augment` on clean
plus one randomly corrupted copy of each training image.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import metrics, viz
from ..corruptions import CORRUPTIONS, corrupt, random_corruption
from .steps import DEFAULT_SIZE, fit_attributor, fit_baseline, load_dataset, pct, save_result, space_artifacts, split_rows


def condition_name(kind: str, strength) -> str:
    return "clean" if kind == "clean" else f"{kind} {strength}"


def pivot(rows: list[dict]) -> tuple[list[dict], list[tuple[str, str]]]:
    """One row per method, one column per condition (the printed table)."""
    conds = list(dict.fromkeys(condition_name(x["corruption"], x["strength"]) for x in rows))
    table: dict[str, dict] = {}
    for x in rows:
        table.setdefault(x["method"], {"method": x["method"]})[condition_name(x["corruption"], x["strength"])] = pct(x["accuracy"])
    return list(table.values()), [("method", "method")] + [(c, c) for c in conds]


def run_robustness(data, out: Path, *, spaces=("rgb", "freq"), baselines=(), baseline_preset="cpu", augment=False, seed=0,
                   arch="small", epochs=30, batch_size=64, size=DEFAULT_SIZE, weights=None, skip_bad=False, device="cpu",
                   progress=True, per_model=None) -> dict:
    out = Path(out)
    d = load_dataset(data, size, skip_bad, per_model=per_model)
    ds, fakes, labels = d.ds, d.fakes, d.labels
    parts = split_rows(ds, seed, d.positions)
    test = parts["test"]
    conditions = [("clean", 0)] + [(k, s) for k, levels in CORRUPTIONS.items() for s in levels]
    test_sets = {c: fakes[test] if c[0] == "clean" else corrupt(fakes[test], *c, seed=seed) for c in conditions}
    train_x, train_y = fakes[parts["train"]], labels[parts["train"]]
    if augment:
        extra_x = random_corruption(train_x, seed)
        train_x, train_y = torch.cat([train_x, extra_x]), torch.cat([train_y, train_y])
    # the training set (clean, or clean + corrupted copies) as its own rows: parts of the stacked tensors below
    n_train, n_val = len(train_x), len(parts["val"])
    fit_parts = {"train": torch.arange(n_train), "val": torch.arange(n_train, n_train + n_val)}
    rows = []
    for space in spaces:
        # the clean images' artifacts once; only the processed copies are projected again
        manifold, clean = space_artifacts(d, space, weights=weights, device=device, cache_dir=out / "cache",
                                          progress=progress)
        a_train = clean.artifact[parts["train"]]
        if augment:
            a_train = torch.cat([a_train, manifold.artifacts(extra_x).artifact])
        stacked = torch.cat([a_train, clean.artifact[parts["val"]]])
        att, _ = fit_attributor(stacked, torch.cat([train_y, labels[parts["val"]]]), fit_parts,
                                ds.models, arch=arch, epochs=epochs, seed=seed, batch_size=batch_size, device=device,
                                progress=progress)
        for (kind, strength), x in test_sets.items():
            a_test = clean.artifact[test] if kind == "clean" else manifold.artifacts(x).artifact
            pred, _ = att.predict(a_test)
            rows.append({"method": f"ManiFPT {space}", "corruption": kind, "strength": strength,
                         "accuracy": metrics.accuracy(pred.numpy(), labels[test].numpy())})
    images = torch.cat([train_x, fakes[parts["val"]]])
    for name in baselines:
        b, _ = fit_baseline(name, images, torch.cat([train_y, labels[parts["val"]]]), fit_parts, preset=baseline_preset,
                            size=size, epochs=epochs, seed=seed, device=device, progress=progress, reals=d.reals)
        for (kind, strength), x in test_sets.items():
            rows.append({"method": name, "corruption": kind, "strength": strength,
                         "accuracy": metrics.accuracy(b.predict(x), labels[test].numpy())})
    figure = viz.robustness_figure(rows, CORRUPTIONS, out / "robustness.png")
    return save_result(out, {"experiment": "robustness", "data": str(data), "augment": augment, "seed": seed, "rows": rows,
                             "figures": [figure.name]})
