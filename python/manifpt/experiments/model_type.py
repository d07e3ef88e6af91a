"""Model-type attribution (the paper's Table 1): which model made each image, ManiFPT against the baselines.

For each space (ManiFPT) and each baseline: the test accuracy, mean +- std over seeds (each seed its own
split and initialisation), and the FD ratio over all generated images: of the artifacts (ManiFPT), or of
the baseline's features (its seed-0 model). Also t-SNE panels of the pixels, each space's artifacts and
each baseline's features (the paper's Fig. 1), and one (fake, nearest real, artifact) triplet per model.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import manifpt_ext

from .. import metrics, viz
from ..baselines import BASELINES, make_baseline
from ..baselines.base import SklearnBaseline
from ..io import atomic_save_npy, atomic_write_json
from ..manifold import Artifacts
from .steps import (DEFAULT_SIZE, baseline_params, check_baseline_overrides, drop_identical, fit_and_report, fit_baseline, load_dataset,
                    mean_std_pct, mean_std_row, resume_state, save_result, space_artifacts, split_rows)

PIXEL_CONTROL = "control: images"  # the row of the attributor on the images, not their artifacts

COLUMNS = [("method", "method"), ("space", "space"), ("accuracy % (mean +- std)", mean_std_pct),
           ("FDR", lambda x: "n/a" if x["fdr"] is None else f"{x['fdr']:.2f}")]


def run_model_type(data, out: Path, *, spaces=("rgb", "freq"), seeds=3, arch="small", epochs=30, batch_size=64,
                   size=DEFAULT_SIZE, weights=None, neighbour_space=None, skip_bad=False, device="cpu", progress=True,
                   baselines=(), baseline_preset="cpu", baseline_args: dict | None = None, where: dict | None = None,
                   resume: bool = False, pixel_control: bool = False, per_model: int | None = None,
                   memory_budget: int | None = None) -> dict:
    """Table 1. `where` (e.g. {"training_set": "photo"}) keeps the models whose models.csv row matches: the
    paper compares models of one training set. `baseline_args` ({name: {param: value}}) overrides
    constructor arguments of the preset. `pixel_control` adds a row of ManiFPT's attributor trained, with
    the same splits and seeds, on the images themselves.

    progress.json in `out` holds every finished row and seed (and features/<name>.npy the seed-0 baseline
    features, for the t-SNE panels); `resume` continues from there, and a seed that was cut off continues
    from its last epoch's checkpoint (attributors and torch baselines alike).

    `memory_budget` (bytes): the sets that do not fit in memory. See _model_type_streamed."""
    out = Path(out)
    if memory_budget is not None:
        return _model_type_streamed(data, out, spaces=spaces, seeds=seeds, arch=arch, epochs=epochs, batch_size=batch_size,
                                    size=size, weights=weights, neighbour_space=neighbour_space, skip_bad=skip_bad,
                                    device=device, progress=progress, baselines=baselines, where=where, resume=resume,
                                    pixel_control=pixel_control, per_model=per_model, memory_budget=memory_budget)
    baseline_args = baseline_args or {}
    check_baseline_overrides(baseline_args, baseline_preset, size, epochs, device)
    rows, panels, triplet_arts = [], {}, {}
    triplet_rows = nearest = None
    d = load_dataset(data, size, skip_bad, where, per_model)  # decoded once for every space and baseline
    ds, fakes, labels, positions = d.ds, d.fakes, d.labels, d.positions
    prev = resume_state(out / "progress.json", {
        "data": str(Path(data).resolve()), "where": where, "models": ds.models, "images": len(labels), "size": size,
        "spaces": spaces, "weights": weights, "neighbour_space": neighbour_space, "seeds": seeds, "arch": arch,
        "epochs": epochs, "batch_size": batch_size, "baselines": baselines, "baseline_preset": baseline_preset,
        "baseline_args": baseline_args, "pixel_control": pixel_control, "per_model": per_model}, resume)
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
            r = fit_and_report(ds, art, labels, positions, out / space / f"seed{seed}", space=space, arch=arch,
                               epochs=epochs, seed=seed, batch_size=batch_size, resume=prev["resumed"], device=device,
                               progress=progress, figures=seed == 0, report=False,
                               extra={"space": space, "data": str(Path(data).resolve()), "size": size,
                                      "weights": None if w is None else str(w), "neighbour_space": neighbour_space})
            accs.append(r["accuracy"])
            checkpoint(method, space, accs)
        a, y, _ = drop_identical(art, labels)
        rows.append({"method": method, "space": space, **mean_std_row(accs),
                     "fdr": row["fdr"] if row else metrics.fd_ratio(a.numpy(), y.numpy())["fdr"]})
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
        # hand-crafted features are a fixed function of the images: computed once, for every seed
        fixed = None
        if issubclass(BASELINES[name], SklearnBaseline) and len(accs) < seeds:
            fixed = make_baseline(name, **baseline_params(name, baseline_preset, size, epochs, 0, device,
                                                          overrides=baseline_args.get(name))).use_reals(d.reals).features(fakes)
        for seed in range(len(accs), seeds):
            b, acc = fit_baseline(name, fakes, labels, split_rows(ds, seed, positions), preset=baseline_preset, size=size,
                                  epochs=epochs, seed=seed, device=device, progress=progress,
                                  overrides=baseline_args.get(name), resume=prev["resumed"], features=fixed, reals=d.reals,
                                  checkpoint=out / "baselines" / name / f"seed{seed}" / "checkpoint.pt")
            accs.append(acc)
            if seed == 0:  # FDR and t-SNE over all generated images, as for the artifacts
                feats = fixed if fixed is not None else b.features(fakes)
                fdr = metrics.fd_ratio(feats, labels.numpy())["fdr"]
                panels[f"{name} features"] = (feats, labels.numpy())
                atomic_save_npy(features, feats)
            checkpoint(name, "-", accs, fdr)
        rows.append({"method": name, "space": "-", **mean_std_row(accs), "fdr": fdr, "preset": baseline_preset,
                     "overrides": baseline_args.get(name, {})})
    order = {"pixels": 0, "ImageNet features": 1}  # then the baselines, then ours, as in Fig. 1
    panels = dict(sorted(panels.items(), key=lambda kv: (order.get(kv[0], 2), kv[0].startswith("artifacts"))))
    viz.tsne_figure(panels, ds.models, out / "tsne.png")
    figures = ["tsne.png"] + [f"{s}/seed0/confusion.png" for s in [*spaces, *["pixels"] * pixel_control]]
    if triplet_arts:
        viz.triplet_figure(fakes[triplet_rows], nearest, triplet_arts, ds.models, out / "triplets.png")
        figures.append("triplets.png")
    return save_result(out, {"experiment": "model-type", "data": str(data), "where": where, "models": ds.models,
                             "arch": arch, "epochs": epochs, "seeds": seeds,
                             "baseline_preset": baseline_preset if baselines else None, "rows": rows,
                             "figures": figures, "tsne_panels": list(panels)})


def _model_type_streamed(data, out: Path, *, spaces, seeds, arch, epochs, batch_size, size, weights, neighbour_space,
                         skip_bad, device, progress, baselines, where, resume, pixel_control, per_model,
                         memory_budget) -> dict:
    """Table 1's ManiFPT rows within `memory_budget`: per space, the artifact store OUT/stores/SPACE built chunk
    by chunk (workflow.run_artifacts, resumable per chunk), then each seed's attributor trained and scored
    from that file (scale_fit.fit_store, resumable per epoch). The split of a seed is the in-RAM study's
    (stratified_split of the same files), and a store's rows equal the in-RAM artifacts bit for bit, so the
    accuracies are the in-RAM study's. The FD ratio is taken on at most workflow.FDR_ROWS rows per model;
    the t-SNE and triplet figures, which need every artifact in memory, are left out. The baselines and the
    pixel control train on decoded images in RAM: they are refused here."""
    from ..scale_fit import fit_store
    from ..workflow import run_artifacts

    if baselines or pixel_control:
        raise ValueError("--memory-budget: the baselines and --pixel-control train on the decoded images in memory; "
                         "run them without --memory-budget (on a subset with --per-model if the set is too large)")
    if where:
        raise ValueError("--where with --memory-budget: the streamed store holds every model of the folder; copy the "
                         "models you want into a folder of their own")
    if skip_bad:
        raise ValueError("--skip-bad with --memory-budget: the streamed store has one row per image")
    if not spaces:
        raise ValueError("--memory-budget: give --spaces (the streamed study has the ManiFPT rows only)")
    prev = resume_state(out / "progress.json", {
        "data": str(Path(data).resolve()), "size": size, "spaces": spaces, "weights": weights, "per_model": per_model,
        "neighbour_space": neighbour_space, "seeds": seeds, "arch": arch, "epochs": epochs, "batch_size": batch_size,
        "streamed": True}, resume)
    finished = {r["space"]: r for r in prev["rows"]}
    rows, figures, models = [], [], None
    for space in spaces:
        w = weights.get(space) if isinstance(weights, dict) else weights
        store = out / "stores" / space
        if space in finished:
            rows.append(finished[space])
        else:
            def note(accs, fdr):  # every finished step is on disk at once: a full-size store is hours
                atomic_write_json(out / "progress.json", {"settings": prev["settings"], "rows": rows,
                                                          "running": {"space": space, "accuracies": accs, "fdr": fdr}})

            run = prev["running"] if prev["running"] and prev["running"]["space"] == space else None
            if run is not None and (store / "store.json").is_file():  # built before the cut: not again
                accs, fdr = list(run["accuracies"]), run["fdr"]
            else:
                fdr = run_artifacts(data, space, store, size=size, weights=w, neighbour_space=neighbour_space,
                                    device=device, progress=progress, per_model=per_model,
                                    memory_budget=memory_budget)["fdr"]
                accs = []
                note(accs, fdr)
            for seed in range(len(accs), seeds):
                r = fit_store(store, out / space / f"seed{seed}", arch=arch, epochs=epochs, seed=seed,
                              batch_size=batch_size, resume=prev["resumed"], device=device, progress=progress,
                              memory_budget=memory_budget)
                accs.append(r["accuracy"])
                models = r["models"]
                note(accs, fdr)
            rows.append({"method": "ManiFPT", "space": space, **mean_std_row(accs), "fdr": fdr["fdr"],
                         "fdr_rows": fdr.get("rows")})
            atomic_write_json(out / "progress.json", {"settings": prev["settings"], "rows": rows, "running": None})
        figures.append(f"{space}/seed0/confusion.png")
    if models is None:
        models = json.loads((out / spaces[0] / "seed0" / "results.json").read_text())["models"]
    return save_result(out, {"experiment": "model-type", "data": str(data), "models": models, "arch": arch,
                             "epochs": epochs, "seeds": seeds, "memory_budget": memory_budget, "rows": rows,
                             "figures": figures})
