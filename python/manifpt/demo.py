"""`manifpt demo`: the paper's three studies on the embedded GM-Mini, one after the other.

Presets (both use the small ResNet attributor of attribute.py; the CNN baselines use the `cpu` preset of
experiments.steps.baseline_params). Model-type compares the 12 models trained on the photo set, as the paper
compares models of one training set; the other two studies use all 15.
- quick (default; time and tables in docs/results.md, with the CPU they were measured on): rgb + freq
  artifacts, the three hand-crafted-feature baselines and Yu19, on a seeded subset of 200 images per model
  (`per_model`); 2 seeds x 6 epochs for model-type, 2 seeds x 10 epochs for training-data (fewer images
  need more epochs to learn the set), k-means NMI on the artifacts' top 50 principal components for
  layer-type (the same NMIs to within 0.02, several times faster). Sized so that a 2-core AVX2 CPU (a Zen 3
  runs these workloads about 3.5x slower than the Zen 5 of docs/results.md) finishes in about 12 minutes;
  its conclusions are those of the full setting (ManiFPT far above every baseline of the preset, training
  sets told apart, frequency artifacts clustering by design factor far more than RGB ones), its numbers lower.
- full (`--full`): rgb + freq, all ten baselines (the paper's eight, NPR, FSD), 3 seeds x 30 epochs:
  about 3.7 core-hours on the 2-core CPU for the paper's eight, Marra18 alone 106 min on one core, and
  10 core-minutes for NPR and FSD (benchmarks/RESULTS.md); docs/results.md has the
  tables of these settings, run one baseline at a time.
The ResNet50 feature spaces (sl, ssl) need local weights and are in neither preset; pass `--weights` to
the experiment commands for them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

PRESETS = {
    "quick": {"spaces": ("rgb", "freq"), "baselines": ("mccloskey18", "durall20", "dzanic20", "yu19"),
              "seeds": 2, "epochs": 6, "td_seeds": 2, "td_epochs": 10, "where": {"training_set": "photo"},
              "per_model": 200, "nmi_dims": 50},
    "full": {"spaces": ("rgb", "freq"), "baselines": "all", "seeds": 3, "epochs": 30, "td_seeds": 3, "td_epochs": 30,
             "where": {"training_set": "photo"}},
}


def run_demo(out: Path, *, full: bool = False, data=None, device: str = "cpu", preset: dict | None = None,
             resume: bool = False) -> dict:
    """Runs model-type, training-data and layer-type on GM-Mini (or `data`) into out/<study>/; returns
    {"tables": {study: markdown}, "figures": [paths], "seconds": {study: s}}. out/progress.json records
    each finished study; `resume` keeps those (when the settings match) and resumes model-type."""
    from tqdm import tqdm

    from .baselines import BASELINES
    from .experiments import layer_type, model_type, steps, training_data
    from .data import gm_mini
    from .io import atomic_write_json, atomic_write_text

    p = dict(preset or PRESETS["full" if full else "quick"])
    baselines = list(BASELINES) if p["baselines"] == "all" else list(p["baselines"])
    root = gm_mini.resolve(data)
    # the photo-set filter is GM-Mini's; another folder is compared over all its models
    where = p["where"] if data is None or str(data).lower() == gm_mini.NAME else None
    out = Path(out)
    name = "full" if full else "quick"
    prev = steps.resume_state(out / "progress.json", {"data": str(root), "preset": name, **p, "baselines": baselines,
                                                    "where": where, "device": device}, resume)
    tables, figures, seconds = {}, [], {}
    columns = {"model-type": model_type.COLUMNS, "training-data": training_data.COLUMNS, "layer-type": layer_type.COLUMNS}
    stages = tqdm(["model-type", "training-data", "layer-type"], desc="demo", unit="study")
    for study in stages:
        stages.set_postfix_str(study)
        t0 = time.time()
        if study in prev["rows"]:  # finished by an earlier run of these settings
            r = json.loads((out / study / "results.json").read_text())
        elif study == "model-type":
            r = model_type.run_model_type(root, out / study, spaces=p["spaces"], seeds=p["seeds"], epochs=p["epochs"],
                                  baselines=baselines, device=device, where=where, resume=resume,
                                  per_model=p.get("per_model"))
        elif study == "training-data":
            r = training_data.run_training_data(root, out / study, spaces=p["spaces"], seeds=p["td_seeds"],
                                                epochs=p["td_epochs"], device=device, per_model=p.get("per_model"))
        else:
            r = layer_type.run_layer_type(root, out / study, spaces=p["spaces"], device=device, per_model=p.get("per_model"),
                                          max_dims=p.get("nmi_dims"))
        tables[study] = steps.table(r["rows"], columns[study])
        seconds[study] = prev["rows"][study] if study in prev["rows"] else round(time.time() - t0, 1)
        figures += [str(out / study / f) for f in r.get("figures", [])]
        atomic_write_text(out / study / "results.md", tables[study] + "\n")
        atomic_write_json(out / "progress.json", {"settings": prev["settings"], "rows": seconds, "running": None})
    titles = {"model-type": "Model-type attribution (paper Table 1)",
              "training-data": "Which training set? (paper Table 5)",
              "layer-type": "NMI of artifact clusters vs design factors (paper Table 6)"}
    summary = "\n\n".join(f"## {titles[s]} ({seconds[s]:.0f} s)\n\n{tables[s]}" for s in tables)
    atomic_write_text(out / "summary.md", f"# manifpt demo on {root} ({name} preset)\n\n{summary}\n")
    result = {"data": str(root), "preset": name, "settings": {**p, "baselines": baselines, "where": where},
              "tables": tables, "figures": figures, "seconds": seconds}
    atomic_write_json(out / "summary.json", result)
    return result
