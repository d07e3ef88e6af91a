"""Training-data attribution (the paper's Table 5): which training set a model of one type was trained on.

For every model type trained on two or more training sets (models.csv: `type_column`, `target_column`),
the accuracy of predicting the training set from the artifacts, mean +- std over seeds. The artifacts
are taken against all reals of ROOT/real. Each seed uses its own stratified split of that type's
images (by training set).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..data import stratified_split
from .steps import (DEFAULT_SIZE, factor_column, fit_attributor, load_dataset, mean_std_pct, mean_std_row, pct,
                    save_result, space_artifacts)

COLUMNS = [("space", "space"), ("model type", "model_type"), ("training sets", lambda x: ", ".join(x["training_sets"])),
           ("accuracy % (mean +- std)", mean_std_pct), ("chance %", lambda x: pct(x["chance"]))]


def run_training_data(data, out: Path, *, spaces=("rgb", "freq"), type_column="type", target_column="training_set",
                      seeds=3, arch="small", epochs=30, batch_size=64, size=DEFAULT_SIZE, weights=None, neighbour_space=None,
                      skip_bad=False, device="cpu", progress=True, per_model=None) -> dict:
    out = Path(out)
    rows = []
    d = load_dataset(data, size, skip_bad, per_model=per_model)
    ds, labels = d.ds, d.labels
    mtype, target = factor_column(ds, type_column), factor_column(ds, target_column)
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
                parts = {k: torch.tensor(v, dtype=torch.long) for k, v in stratified_split(y_t.tolist(), seed).items()}
                accs.append(fit_attributor(x, y_t, parts, sets, arch=arch, epochs=epochs, seed=seed, batch_size=batch_size,
                                           device=device, progress=progress)[1])
            rows.append({"space": space, "model_type": t, "training_sets": sets, "models": models, **mean_std_row(accs),
                         "chance": 1 / len(sets)})
    if not rows:
        raise ValueError(f"no model type in {data} has models trained on two or more training sets "
                         f"(models.csv columns {type_column!r}, {target_column!r})")
    return save_result(out, {"experiment": "training-data", "data": str(data), "seeds": seeds, "rows": rows})
