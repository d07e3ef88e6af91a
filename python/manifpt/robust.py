"""Beyond the paper: robustness to real-world processing, unknown generators (open set), calibration.

Corruptions (applied to test images only, unless training with `augment`):
- `jpeg`: quality 95 / 75 / 50;
- `rescale`: downscale by 0.75 / 0.5, then upscale back (bilinear, antialiased);
- `blur`: Gaussian, sigma 0.5 / 1.0;
- `noise`: additive Gaussian, std 0.02 / 0.05 in [0, 1] units;
- `crop`: centre crop of 90% / 75% of the side, resized back.

`run_robustness` trains each method once on clean images, or on clean plus one corrupted copy of each
training image with `augment`. It then measures test accuracy under every corruption and strength.

`run_open_set` is leave-one-model-out:
- each generator in turn is held out of training;
- the attributor is trained on the others, calibrated on their validation images, and given an
  open-set threshold that keeps 95% of those validation images;
- it reports the AUROC of known test images against all images of the held-out generator, the
  closed-set accuracy on the known test images, and the share of unknown images flagged at that
  threshold.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision.transforms.v2 import functional as TF

from . import metrics
from .attribute import Attributor
from .io import atomic_write_json

CORRUPTIONS = {"jpeg": (95, 75, 50), "rescale": (0.75, 0.5), "blur": (0.5, 1.0), "noise": (0.02, 0.05), "crop": (0.9, 0.75)}


def corrupt(images: torch.Tensor, kind: str, strength: float, seed: int = 0) -> torch.Tensor:
    """images (N, 3, H, W) in [0, 1] -> the same, processed."""
    n, _, h, w = images.shape
    if kind == "jpeg":
        u8 = (images.clamp(0, 1) * 255).round().to(torch.uint8)
        return torch.stack([torchvision.io.decode_jpeg(torchvision.io.encode_jpeg(im, quality=int(strength))) for im in u8]).float() / 255
    if kind == "rescale":
        small = TF.resize(images, [max(1, round(h * strength)), max(1, round(w * strength))], antialias=True)
        return TF.resize(small, [h, w], antialias=True).clamp(0, 1)
    if kind == "blur":
        k = 2 * math.ceil(3 * strength) + 1
        return TF.gaussian_blur(images, [k, k], [strength, strength])
    if kind == "noise":
        g = torch.Generator().manual_seed(seed)
        return (images + strength * torch.randn(images.shape, generator=g)).clamp(0, 1)
    if kind == "crop":
        ch, cw = max(1, round(h * strength)), max(1, round(w * strength))
        return TF.resize(TF.center_crop(images, [ch, cw]), [h, w], antialias=True).clamp(0, 1)
    raise ValueError(f"unknown corruption {kind!r}: choose from {', '.join(CORRUPTIONS)}")


def _random_corruption(images: torch.Tensor, seed: int) -> torch.Tensor:
    """One random corruption per image (kind and strength drawn uniformly), for training augmentation."""
    g = torch.Generator().manual_seed(seed)
    out = images.clone()
    kinds = list(CORRUPTIONS)
    for i in range(len(images)):
        kind = kinds[int(torch.randint(len(kinds), (1,), generator=g))]
        levels = CORRUPTIONS[kind]
        out[i] = corrupt(images[i : i + 1], kind, levels[int(torch.randint(len(levels), (1,), generator=g))], seed + i)[0]
    return out


def run_robustness(data, out: Path, *, spaces=("rgb", "freq"), baselines=(), baseline_preset="cpu", augment=False, seed=0,
                   arch="small", epochs=30, batch_size=64, size=32, weights=None, skip_bad=False, device="cpu",
                   progress=True) -> dict:
    from .baselines import make_baseline
    from .experiments import baseline_params, load_dataset, space_artifacts, split_rows

    out = Path(out)
    d = load_dataset(data, size, skip_bad)
    ds, fakes, labels = d.ds, d.fakes, d.labels
    parts = split_rows(ds, seed, d.positions)
    train, val, test = (parts[k] for k in ("train", "val", "test"))
    conditions = [("clean", 0)] + [(k, s) for k, levels in CORRUPTIONS.items() for s in levels]
    test_sets = {c: fakes[test] if c[0] == "clean" else corrupt(fakes[test], *c, seed=seed) for c in conditions}
    train_x, train_y = fakes[train], labels[train]
    if augment:
        extra_x = _random_corruption(train_x, seed)
        train_x = torch.cat([train_x, extra_x])
        train_y = torch.cat([train_y, train_y])
    rows = []
    for space in spaces:
        # the clean images' artifacts once; only the processed copies are projected again
        manifold, clean = space_artifacts(d, space, weights=weights, device=device, cache_dir=out / "cache",
                                          progress=progress)
        a_train = clean.artifact[train]
        if augment:
            a_train = torch.cat([a_train, manifold.artifacts(extra_x).artifact])
        att = Attributor(len(ds.models), tuple(a_train.shape[1:]), arch=arch, epochs=epochs, seed=seed,
                         batch_size=batch_size, device=device, class_names=ds.models)
        att.fit(a_train, train_y, clean.artifact[val], labels[val], progress=progress)
        for (kind, strength), x in test_sets.items():
            a_test = clean.artifact[test] if kind == "clean" else manifold.artifacts(x).artifact
            pred, _ = att.predict(a_test)
            rows.append({"method": f"ManiFPT {space}", "corruption": kind, "strength": strength,
                         "accuracy": metrics.accuracy(pred.numpy(), labels[test].numpy())})
    for name in baselines:
        b = make_baseline(name, **baseline_params(name, baseline_preset, size, epochs, seed, device, progress))
        b.fit(train_x, train_y, fakes[val], labels[val])
        for (kind, strength), x in test_sets.items():
            rows.append({"method": name, "corruption": kind, "strength": strength,
                         "accuracy": metrics.accuracy(b.predict(x), labels[test].numpy())})
    figure = _robustness_figure(rows, out / "robustness.png")
    result = {"experiment": "robustness", "data": str(data), "augment": augment, "seed": seed, "rows": rows,
              "figures": [figure.name]}
    atomic_write_json(out / "results.json", result)
    return result


def _robustness_figure(rows, path: Path) -> Path:
    from .viz import _plt, _save

    plt = _plt()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    clean = {m: next(r["accuracy"] for r in rows if r["method"] == m and r["corruption"] == "clean") for m in methods}
    fig, axes = plt.subplots(1, len(CORRUPTIONS), figsize=(3.2 * len(CORRUPTIONS), 3), squeeze=False)
    for ax, (kind, levels) in zip(axes[0], CORRUPTIONS.items()):
        for m in methods:
            acc = [clean[m]] + [next(r["accuracy"] for r in rows if r["method"] == m and r["corruption"] == kind
                                     and r["strength"] == s) for s in levels]
            ax.plot(range(len(levels) + 1), [100 * a for a in acc], marker="o", label=m)
        ax.set_xticks(range(len(levels) + 1), ["clean", *map(str, levels)])
        ax.set_title(kind)
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel("accuracy %")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def run_open_set(data, out: Path, *, spaces=("rgb", "freq"), baselines=(), baseline_preset="cpu", method="energy", keep=0.95,
                 seed=0, arch="small", epochs=30, batch_size=64, size=32, weights=None, skip_bad=False, device="cpu",
                 progress=True) -> dict:
    from .baselines import make_baseline
    from .experiments import baseline_params, load_dataset, space_artifacts, split_rows

    out = Path(out)
    d = load_dataset(data, size, skip_bad)
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
        for space, a in artifacts.items():
            att = Attributor(len(known), tuple(a.shape[1:]), arch=arch, epochs=epochs, seed=seed, batch_size=batch_size,
                             device=device, class_names=[ds.models[k] for k in known])
            att.fit(a[sel["train"]], y[sel["train"]], a[sel["val"]], y[sel["val"]], progress=progress)
            att.calibrate(a[sel["val"]], y[sel["val"]])
            att.fit_open_set(a[sel["val"]], method, keep, a[sel["train"]], y[sel["train"]])
            s_known, s_unknown = att.open_set_scores(a[sel["test"]]), att.open_set_scores(a[unknown])
            pred, _ = att.predict(a[sel["test"]])
            rows.append(_open_row(f"ManiFPT {space}", ds.models[held], s_known, s_unknown, att.open_set["threshold"],
                                  metrics.accuracy(pred.numpy(), y[sel["test"]].numpy())))
        for name in baselines:
            b = make_baseline(name, **baseline_params(name, baseline_preset, size, epochs, seed, device, progress))
            b.fit(fakes[sel["train"]], y[sel["train"]], fakes[sel["val"]], y[sel["val"]])
            threshold = float(np.quantile(b.confidence(fakes[sel["val"]]), 1 - keep))
            rows.append(_open_row(name, ds.models[held], b.confidence(fakes[sel["test"]]), b.confidence(fakes[unknown]),
                                  threshold, metrics.accuracy(b.predict(fakes[sel["test"]]), y[sel["test"]].numpy())))
    summary = []
    for m in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == m]
        summary.append({"method": m, **{k: float(np.mean([r[k] for r in mine]))
                                        for k in ("auroc", "closed_set_accuracy", "unknown_detected", "known_rejected")}})
    result = {"experiment": "open-set", "data": str(data), "score": method, "keep": keep, "rows": rows, "summary": summary}
    atomic_write_json(out / "results.json", result)
    return result


def _open_row(method, held_out, s_known, s_unknown, threshold, accuracy) -> dict:
    s_known, s_unknown = np.asarray(s_known, np.float64), np.asarray(s_unknown, np.float64)
    return {"method": method, "held_out": held_out, "auroc": metrics.auroc(s_known, s_unknown),
            "closed_set_accuracy": accuracy, "unknown_detected": float((s_unknown < threshold).mean()),
            "known_rejected": float((s_known < threshold).mean())}
