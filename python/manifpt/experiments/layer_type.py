"""Layer-type clustering (the paper's Table 6): do the artifacts cluster by design factor?

For each space and each design factor of models.csv (or `factors`), the NMI between a k-means
clustering of the artifacts (k = number of values of the factor) and the factor's value for each image.
Factors with a single value are skipped. `max_dims` clusters the artifacts' top principal components
instead of all their dimensions (the quick preset: 50).
"""
from __future__ import annotations

from pathlib import Path

from .. import metrics
from .steps import DEFAULT_SIZE, drop_identical, factor_column, load_dataset, save_result, space_artifacts

COLUMNS = [("space", "space"), ("factor", "factor"), ("values", lambda x: len(x["values"])), ("NMI", lambda x: f"{x['nmi']:.3f}")]


def run_layer_type(data, out: Path, *, spaces=("rgb", "freq"), factors=None, seed=0, size=DEFAULT_SIZE, weights=None,
                   neighbour_space=None, skip_bad=False, device="cpu", progress=True, per_model=None,
                   max_dims: int | None = None) -> dict:
    out = Path(out)
    rows = []
    d = load_dataset(data, size, skip_bad, per_model=per_model)
    ds = d.ds
    for space in spaces:
        _, art = space_artifacts(d, space, weights=weights, neighbour_space=neighbour_space, device=device,
                                 cache_dir=out / "cache", progress=progress)
        a, y, _ = drop_identical(art, d.labels)
        x = a.numpy() if max_dims is None else metrics.top_components(a.numpy(), max_dims, seed=seed)  # once per space
        for factor in factors or sorted(next(iter(ds.factors.values()), {})):
            column = factor_column(ds, factor)
            values = sorted(set(column.values()))
            if len(values) < 2:
                continue
            f = [values.index(column[ds.models[int(k)]]) for k in y]
            rows.append({"space": space, "factor": factor, "values": values, "nmi": metrics.nmi(x, f, seed=seed)})
    if not rows:
        raise ValueError(f"{data}: no design factor with two or more values in models.csv")
    return save_result(out, {"experiment": "layer-type", "data": str(data), "rows": rows})
