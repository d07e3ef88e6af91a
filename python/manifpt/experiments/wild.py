"""Attribution in the wild: every image goes through what social platforms do to images (JPEG at
quality U[30, 95], resizing by U[0.5, 1.5] and back, a crop of U[0.7, 1.0] of the side resized back; in
a random order, corruptions.wild_chain) before any method sees it, and every method trains and tests on
such images.

The reals are split once (`chain_seed`) into the manifold (what ManiFPT subtracts from) and a "real"
class, which every method learns beside the generators. Reals and fakes go through the same chain
distribution, so a method cannot tell them apart by their processing. Each seed draws its own
stratified 70/15/15 split and initialisation, and holds one generator out of training (a different one
per seed, in a seeded order): leave one model out. Per seed and method:
- **accuracy**: attribution of the test images of the known generators (argmax over the known
  generators' classes, the real class left out: the clean table's question);
- **real vs fake**: AUROC and AP (fake = positive) of 1 - P(real), test reals against the test images of
  the known generators and every image of the held-out one;
- **open set**: AUROC (known = positive) and AP (unknown = positive) of the method's confidence, the
  known generators' test images against every image of the held-out generator. Confidence is the max
  class probability, except for FSD (its best source's log-likelihood) and Marra19 (softmax of
  distances to its class means).
`pixel_control` adds ManiFPT's attributor trained on the images themselves, not their artifacts (the
same splits and seeds): what subtracting the nearest real adds in the wild.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import metrics
from ..baselines import BASELINES, make_baseline
from ..baselines.base import SklearnBaseline
from ..corruptions import wild_chain
from ..data.folder import stratified_split
from ..io import atomic_write_json
from .steps import (DEFAULT_SIZE, Loaded, baseline_params, fit_attributor, fit_baseline, load_dataset, pct, resume_state,
                    save_result, space_artifacts)

PIXEL_CONTROL = "control: images"
METRICS = ("accuracy", "rvf_auroc", "rvf_ap", "open_auroc", "open_ap")
QUICK = {"per_model": 200, "seeds": 2, "epochs": 6,
         "baselines": ("npr", "fsd", "wang20", "mccloskey18", "durall20", "dzanic20")}


def _ms(key: str, percent: bool):
    def cell(r):
        m, s = r[f"{key}_mean"], r[f"{key}_std"]
        return f"{pct(m)} +- {pct(s)}" if percent else f"{m:.3f} +- {s:.3f}"
    return cell


COLUMNS = [("method", "method"), ("space", "space"), ("accuracy % (known)", _ms("accuracy", True)),
           ("real-vs-fake AUROC", _ms("rvf_auroc", False)), ("real-vs-fake AP", _ms("rvf_ap", False)),
           ("open-set AUROC", _ms("open_auroc", False)), ("open-set AP", _ms("open_ap", False))]


def _average_precision(pos, neg) -> float:
    from sklearn.metrics import average_precision_score

    s = np.concatenate([np.asarray(pos, np.float64), np.asarray(neg, np.float64)])
    return float(average_precision_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], s))


def scores(probs: np.ndarray, conf: np.ndarray, y: np.ndarray, rows: dict, real: int) -> dict:
    """The five numbers of one method and seed. probs/conf/y: over all rows (y relabelled: known classes
    0..real, `real` the real class, -1 the held-out generator); rows: "test" and "unknown" row indices."""
    test, unknown = rows["test"], rows["unknown"]
    fake = test[y[test] != real]
    gen = np.delete(probs[fake], real, axis=1)  # attribution among the known generators only
    cols = np.delete(np.arange(probs.shape[1]), real)
    acc = metrics.accuracy(cols[gen.argmax(axis=1)], y[fake])
    p_fake = 1 - probs[:, real]
    fakes, reals = np.concatenate([fake, unknown]), test[y[test] == real]
    return {"accuracy": acc, "rvf_auroc": metrics.auroc(p_fake[fakes], p_fake[reals]),
            "rvf_ap": _average_precision(p_fake[fakes], p_fake[reals]),
            "open_auroc": metrics.auroc(conf[fake], conf[unknown]),
            "open_ap": _average_precision(-conf[unknown], -conf[fake])}


def seed_rows(y_all: torch.Tensor, n_models: int, seed: int, held: int, keep: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """The split of one seed: {"train", "val", "test", "unknown"} row indices and the relabelled targets
    (known generators 0..K-2, real K-1, the held-out generator -1)."""
    split = stratified_split(y_all.tolist(), seed)
    relabel = torch.full((n_models + 1,), -1, dtype=torch.long)
    known = [k for k in range(n_models + 1) if k != held]
    relabel[known] = torch.arange(len(known))
    y = relabel[y_all]
    rows = {k: torch.tensor([r for r in v if keep[r] and y[r] >= 0], dtype=torch.long) for k, v in split.items()}
    rows["unknown"] = torch.nonzero((y_all == held) & keep).flatten()
    return rows, y


def run_wild(data, out: Path, *, spaces=("rgb", "freq"), baselines=(), baseline_preset="cpu", seeds=3, arch="small",
             epochs=30, batch_size=64, size=DEFAULT_SIZE, weights=None, skip_bad=False, device="cpu", progress=True,
             per_model=None, where=None, pixel_control=True, chain_seed=0, resume=False) -> dict:
    out = Path(out)
    d = load_dataset(data, size, skip_bad, where, per_model)
    ds, k = d.ds, len(d.ds.models)
    if k < 3:
        raise ValueError(f"wild needs at least 3 models (2 known + 1 held out per seed), {data} has {k}")
    if len(d.reals) < 4:
        raise ValueError(f"wild needs at least 4 real images (manifold + real class), {data} has {len(d.reals)}")
    # the real class: half the reals, at most twice the largest model's count; the rest is the manifold
    n_class = min(len(d.reals) // 2, 2 * int(torch.bincount(d.labels).max()))
    perm = torch.randperm(len(d.reals), generator=torch.Generator().manual_seed(chain_seed))
    manifold_reals = wild_chain(d.reals[perm[n_class:]], chain_seed, stream=0)
    images = torch.cat([wild_chain(d.fakes, chain_seed, stream=2), wild_chain(d.reals[perm[:n_class]], chain_seed, stream=1)])
    y_all = torch.cat([d.labels, torch.full((n_class,), k, dtype=torch.long)])
    order = torch.randperm(k, generator=torch.Generator().manual_seed(chain_seed + 1)).tolist()
    held_of = [order[s % k] for s in range(seeds)]
    prev = resume_state(out / "progress.json", {
        "data": str(Path(data).resolve()), "where": where, "models": ds.models, "images": len(images), "size": size,
        "spaces": spaces, "weights": weights, "seeds": seeds, "arch": arch, "epochs": epochs, "batch_size": batch_size,
        "baselines": baselines, "baseline_preset": baseline_preset, "pixel_control": pixel_control,
        "per_model": per_model, "chain_seed": chain_seed}, resume)
    done = {(r["method"], r["space"], r["seed"]): r for r in prev["rows"]}
    per_seed = list(prev["rows"])

    def record(method, space, seed, fn):  # one (method, seed) result, on disk as soon as it is known
        if (method, space, seed) in done:
            return
        rows, y = seed_rows(y_all, k, seed, held_of[seed], keep)
        probs, conf = fn(rows, y, seed)
        r = {"method": method, "space": space, "seed": seed, "held_out": ds.models[held_of[seed]],
             **scores(probs, conf, y.numpy(), {n: v.numpy() for n, v in rows.items()}, real=k - 1)}
        per_seed.append(r)
        atomic_write_json(out / "progress.json", {"settings": prev["settings"], "rows": per_seed, "running": None})

    def names_of(seed):
        return [m for i, m in enumerate(ds.models) if i != held_of[seed]] + ["real"]

    def attributor(x):
        def fn(rows, y, seed):
            att, _ = fit_attributor(x, y, rows, names_of(seed), arch=arch, epochs=epochs, seed=seed,
                                    batch_size=batch_size, device=device, progress=progress)
            p = att.predict(x)[1].numpy()
            return p, p.max(axis=1)
        return fn

    arts, keep = {}, torch.ones(len(images), dtype=torch.bool)
    for space in spaces:
        w = weights.get(space) if isinstance(weights, dict) else weights
        chained = Loaded(ds, manifold_reals, images, y_all, [])
        _, art = space_artifacts(chained, space, weights=w, device=device, cache_dir=out / "cache", progress=progress)
        arts[space] = art.artifact
        keep &= ~art.identical  # a copy of a manifold real has no artifact: left out of every method's rows
    methods = [("ManiFPT", s, attributor(a)) for s, a in arts.items()]
    if pixel_control:
        methods.append((PIXEL_CONTROL, "pixels", attributor(images)))
    for method, space, fn in methods:
        for seed in range(seeds):
            record(method, space, seed, fn)
    for name in baselines:
        fixed = None  # hand-crafted features: a fixed function of the images, computed once for every seed
        if issubclass(BASELINES[name], SklearnBaseline) and any((name, "-", s) not in done for s in range(seeds)):
            fixed = make_baseline(name, **baseline_params(name, baseline_preset, size, epochs, 0, device)) \
                .use_reals(manifold_reals).features(images)
        def fn(rows, y, seed, fixed=fixed, name=name):
            b, _ = fit_baseline(name, images, y, rows, preset=baseline_preset, size=size, epochs=epochs, seed=seed,
                                device=device, progress=progress, features=fixed, reals=manifold_reals)
            if fixed is not None:
                return b.probabilities_features(fixed), b.confidence_features(fixed)
            return b.probabilities(images), b.confidence(images)
        for seed in range(seeds):
            record(name, "-", seed, fn)
    summary = []
    for method, space in dict.fromkeys((r["method"], r["space"]) for r in per_seed):
        mine = sorted((r for r in per_seed if (r["method"], r["space"]) == (method, space)), key=lambda r: r["seed"])
        row = {"method": method, "space": space, "seeds": [r["seed"] for r in mine]}
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_std"] = metrics.mean_std([r[m] for r in mine])
        summary.append(row)
    return save_result(out, {"experiment": "wild", "data": str(data), "where": where, "models": ds.models,
                             "held_out": [ds.models[h] for h in held_of], "real_class_images": n_class,
                             "manifold_reals": len(manifold_reals), "seeds": seeds, "epochs": epochs, "arch": arch,
                             "chain_seed": chain_seed, "rows": summary, "per_seed": per_seed})
