"""The CLI commands on a toy GM folder: artifacts, fit, predict, evaluate, experiment model-type,
and their errors (bad space, corrupt image, wrong weights, truncated checkpoint, empty model folder)."""
import json

import numpy as np
import pytest
import torch
from helpers import make_gm_folder

from manifpt.cli import main


@pytest.fixture(scope="module")
def gm(tmp_path_factory):
    return make_gm_folder(tmp_path_factory.mktemp("data") / "gm", n_real=30, n_model=20)


def _json(path):
    return json.loads(path.read_text())


def test_artifacts_fit_predict_evaluate(gm, tmp_path, capsys):
    common = ["--data", str(gm), "--size", "12", "--device", "cpu"]
    assert main(["artifacts", *common, "--space", "freq", "--out", str(tmp_path / "a")]) == 0
    r = _json(tmp_path / "a" / "results.json")
    assert [m["images"] for m in r["models"]] == [21, 22] and r["fdr"]["fdr"] > 0
    assert (tmp_path / "a" / "triplets.png").stat().st_size > 0 and (tmp_path / "a" / "artifacts.npy").is_file()
    assert "FD ratio" in capsys.readouterr().out

    assert main(["fit", *common, "--epochs", "2", "--out", str(tmp_path / "f")]) == 0
    r = _json(tmp_path / "f" / "results.json")
    assert sum(r["sizes"].values()) == 43 and len(r["history"]) == 2
    cm = np.array(r["confusion"])  # the reported accuracy is the confusion matrix's, over the whole test split
    assert cm.sum() == r["sizes"]["test"] and r["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert main(["fit", *common, "--epochs", "3", "--resume", "--out", str(tmp_path / "f")]) == 2  # config changed
    assert "another configuration" in capsys.readouterr().err

    assert main(["predict", "--model", str(tmp_path / "f" / "model.pt"), str(gm / "model_b"), "--device", "cpu",
                 "--out", str(tmp_path / "p")]) == 0
    preds = _json(tmp_path / "p" / "results.json")["predictions"]
    assert len(preds) == 22 and {p["predicted"] for p in preds} <= {"model_a", "model_b", "unknown"}
    assert {p["nearest_known"] for p in preds} <= {"model_a", "model_b"}
    assert main(["predict", "--model", str(tmp_path / "f" / "model.pt"), str(gm / "model_b"), "--closed-set",
                 "--device", "cpu", "--out", str(tmp_path / "p2")]) == 0
    assert {p["predicted"] for p in _json(tmp_path / "p2" / "results.json")["predictions"]} <= {"model_a", "model_b"}
    assert main(["evaluate", "--model", str(tmp_path / "f" / "model.pt"), "--data", str(gm), "--device", "cpu",
                 "--out", str(tmp_path / "e")]) == 0
    e = _json(tmp_path / "e" / "results.json")
    cm = np.array(e["confusion"])  # every generated image that is not a copy of a real, each counted once
    assert e["identical_excluded"] == 0 and cm.sum(axis=1).tolist() == [21, 22]
    assert e["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())


def test_experiment_model_type(gm, tmp_path, capsys):
    assert main(["experiment", "model-type", "--data", str(gm), "--size", "12", "--spaces", "rgb,freq", "--seeds", "2",
                 "--epochs", "2", "--device", "cpu", "--out", str(tmp_path / "x")]) == 0
    r = _json(tmp_path / "x" / "results.json")
    assert [(row["method"], row["space"]) for row in r["rows"]] == [("ManiFPT", "rgb"), ("ManiFPT", "freq")]
    assert all(len(row["accuracies"]) == 2 and row["accuracy_std"] >= 0 and row["fdr"] > 0 for row in r["rows"])
    assert (tmp_path / "x" / "tsne.png").is_file() and (tmp_path / "x" / "triplets.png").is_file()
    assert "| ManiFPT | freq |" in (tmp_path / "x" / "results.md").read_text()
    assert "accuracy % (mean +- std)" in capsys.readouterr().out


def test_experiment_model_type_sl_has_imagenet_panel(gm, tmp_path):
    import torchvision

    torch.manual_seed(0)  # random ResNet50 weights stand in for ImageNet's, which are never downloaded
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "sl.pth")
    assert main(["experiment", "model-type", "--data", str(gm), "--size", "12", "--spaces", "sl", "--weights",
                 str(tmp_path / "sl.pth"), "--baselines", "durall20", "--seeds", "1", "--epochs", "1", "--device", "cpu",
                 "--out", str(tmp_path / "x")]) == 0
    r = _json(tmp_path / "x" / "results.json")
    assert r["tsne_panels"] == ["pixels", "ImageNet features", "durall20 features", "artifacts (sl)"]  # Fig. 1's order
    assert [(row["method"], row["space"]) for row in r["rows"]] == [("ManiFPT", "sl"), ("durall20", "-")]


def test_experiment_with_baselines(gm, tmp_path, capsys):
    assert main(["experiment", "model-type", "--data", str(gm), "--size", "12", "--spaces", "none", "--baselines",
                 "mccloskey18,durall20", "--seeds", "2", "--device", "cpu", "--out", str(tmp_path / "b")]) == 0
    r = _json(tmp_path / "b" / "results.json")
    assert [row["method"] for row in r["rows"]] == ["mccloskey18", "durall20"] and r["baseline_preset"] == "cpu"
    progress = _json(tmp_path / "b" / "progress.json")  # written after every seed, for runs of hours
    assert progress["running"] == {"method": "durall20", "space": "-", "accuracies": r["rows"][1]["accuracies"],
                                   "fdr": r["rows"][1]["fdr"]}
    assert [row["method"] for row in progress["rows"]] == ["mccloskey18"] and progress["settings"]["seeds"] == 2
    assert main(["experiment", "model-type", "--data", str(gm), "--baselines", "fft9", "--out", str(tmp_path)]) == 2
    assert "unknown baseline(s) ['fft9']" in capsys.readouterr().err


def test_experiment_model_type_pixel_control(gm, tmp_path, monkeypatch, capsys):
    """--pixel-control: the same attributor, splits and seeds on the images themselves."""
    from manifpt.experiments import model_type, steps

    seen, fit_eval = {}, model_type.fit_and_report

    def spy(ds, art, *a, **kw):  # what each row's attributor is trained on
        seen[kw["space"]] = art.artifact
        return fit_eval(ds, art, *a, **kw)
    monkeypatch.setattr(model_type, "fit_and_report", spy)
    assert main(["experiment", "model-type", "--data", str(gm), "--size", "12", "--spaces", "rgb", "--pixel-control",
                 "--seeds", "1", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "c")]) == 0
    r = _json(tmp_path / "c" / "results.json")
    assert [(row["method"], row["space"]) for row in r["rows"]] == [("ManiFPT", "rgb"), ("control: images", "pixels")]
    rgb, pixels = (_json(tmp_path / "c" / s / "seed0" / "results.json") for s in ("rgb", "pixels"))
    assert rgb["sizes"] == pixels["sizes"] and "pixels/seed0/confusion.png" in r["figures"]
    fakes = steps.load_dataset(gm, 12).fakes
    assert torch.equal(seen["pixels"], fakes) and not torch.equal(seen["rgb"], fakes)  # images, not artifacts
    assert main(["experiment", "model-type", "--data", str(gm), "--spaces", "none", "--out", str(tmp_path / "n")]) == 2
    assert "nothing to run" in capsys.readouterr().err


def test_experiment_model_type_within_a_memory_budget(gm, tmp_path, monkeypatch, capsys):
    """--memory-budget: per space a store on disk, each seed trained from it. Same splits and the same
    artifacts bit for bit, so the same accuracies as the in-RAM study; a resumed run neither rebuilds a
    finished store nor refits a finished seed."""
    import manifpt.scale_fit
    import manifpt.workflow

    args = ["experiment", "model-type", "--data", str(gm), "--size", "12", "--spaces", "rgb", "--seeds", "2",
            "--epochs", "2", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "ram")]) == 0
    streamed = [*args, "--memory-budget", "8MB", "--out", str(tmp_path / "disk")]
    assert main(streamed) == 0
    ram, disk = _json(tmp_path / "ram" / "results.json"), _json(tmp_path / "disk" / "results.json")
    assert disk["rows"][0]["accuracies"] == ram["rows"][0]["accuracies"]
    assert (tmp_path / "disk" / "stores" / "rgb" / "store.json").is_file() and disk["memory_budget"] == 8 << 20
    assert disk["rows"][0]["fdr"] > 0 and (tmp_path / "disk" / "rgb" / "seed0" / "confusion.png").is_file()
    # cut after seed 0: the store stays, seed 1 alone is fitted again
    progress = _json(tmp_path / "disk" / "progress.json")
    progress.update(rows=[], running={"space": "rgb", "accuracies": disk["rows"][0]["accuracies"][:1],
                                      "fdr": {"fdr": disk["rows"][0]["fdr"], "rows": disk["rows"][0]["fdr_rows"]}})
    (tmp_path / "disk" / "progress.json").write_text(json.dumps(progress))
    calls = []
    build, fit = manifpt.workflow.run_artifacts, manifpt.scale_fit.fit_store
    monkeypatch.setattr(manifpt.workflow, "run_artifacts", lambda *a, **kw: calls.append("build") or build(*a, **kw))
    monkeypatch.setattr(manifpt.scale_fit, "fit_store", lambda *a, **kw: calls.append(kw["seed"]) or fit(*a, **kw))
    assert main([*streamed, "--resume"]) == 0
    assert calls == [1] and _json(tmp_path / "disk" / "results.json")["rows"] == disk["rows"]
    # what needs the decoded images in memory is refused, before any work
    assert main([*streamed, "--pixel-control"]) == 2
    assert "--memory-budget" in capsys.readouterr().err


def test_experiment_model_type_resume(gm, tmp_path, monkeypatch, capsys):
    """An interrupted run, continued with --resume, fits only what was not finished and gives the table of
    an uninterrupted run; other settings are refused rather than mixed into one mean +- std."""
    import manifpt.baselines
    from manifpt.experiments import model_type

    args = ["experiment", "model-type", "--data", str(gm), "--size", "12", "--spaces", "rgb", "--baselines",
            "mccloskey18,durall20", "--seeds", "2", "--epochs", "2", "--device", "cpu", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    whole = _json(tmp_path / "r" / "results.json")
    # cut it back to where a run stops after mccloskey18's first seed
    rows = whole["rows"]
    progress = _json(tmp_path / "r" / "progress.json")
    progress.update(rows=rows[:1], running={"method": "mccloskey18", "space": "-", "accuracies": rows[1]["accuracies"][:1],
                                            "fdr": rows[1]["fdr"]})
    (tmp_path / "r" / "progress.json").write_text(json.dumps(progress))
    (tmp_path / "r" / "results.json").unlink()
    fitted = []
    make, fit_eval = manifpt.baselines.make_baseline, model_type.fit_and_report
    monkeypatch.setattr(manifpt.baselines, "make_baseline", lambda name, **kw: fitted.append((name, kw["seed"])) or make(name, **kw))
    monkeypatch.setattr(model_type, "fit_and_report", lambda *a, **kw: fitted.append(("ManiFPT", kw["seed"])) or fit_eval(*a, **kw))
    assert main([*args, "--resume"]) == 0
    assert fitted == [("mccloskey18", 1), ("durall20", 0), ("durall20", 1)]
    again = _json(tmp_path / "r" / "results.json")
    assert again["rows"] == whole["rows"] and again["tsne_panels"] == whole["tsne_panels"]
    # cut inside the ManiFPT row: seed 1's attributor continues from its epoch checkpoint (here its last)
    progress.update(rows=[], running={"method": "ManiFPT", "space": "rgb", "accuracies": rows[0]["accuracies"][:1], "fdr": None})
    (tmp_path / "r" / "progress.json").write_text(json.dumps(progress))
    fitted.clear()
    assert main([*args, "--resume"]) == 0
    assert fitted[0] == ("ManiFPT", 1) and len(fitted) == 5
    assert _json(tmp_path / "r" / "results.json")["rows"] == whole["rows"]
    assert main([*args[:-2], "--seeds", "3", "--out", str(tmp_path / "r"), "--resume"]) == 2
    assert "other settings (seeds)" in capsys.readouterr().err


def test_experiment_baseline_args(gm, tmp_path, capsys):
    assert main(["experiment", "model-type", "--data", str(gm), "--size", "12", "--spaces", "none", "--baselines", "durall20,yu19",
                 "--baseline-arg", "durall20.classifier=svm", "--baseline-arg", "yu19.lr=1e-4", "--seeds", "1", "--epochs", "1",
                 "--device", "cpu", "--out", str(tmp_path / "b")]) == 0
    rows = _json(tmp_path / "b" / "results.json")["rows"]
    assert [row["overrides"] for row in rows] == [{"classifier": "svm"}, {"lr": 1e-4}]
    for bad, message in [("yu19.lrr=1", "unexpected keyword argument 'lrr'"), ("yu19=1", "must be NAME.KEY=VALUE"),
                         ("wang20.lr=1", "'wang20' is not among --baselines"), ("yu19.input_size=48", "power of two")]:
        assert main(["experiment", "model-type", "--data", str(gm), "--spaces", "none", "--baselines", "yu19",
                     "--baseline-arg", bad, "--out", str(tmp_path / "c")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # checked before anything runs


def test_errors(gm, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--data", str(gm), "--space", "pixels"])
    assert main(["experiment", "model-type", "--data", str(gm), "--spaces", "rgb,pix", "--out", str(tmp_path)]) == 2
    assert "unknown space(s) ['pix']" in capsys.readouterr().err
    bad = make_gm_folder(tmp_path / "bad", n_real=8, n_model=4)
    (bad / "model_a" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    assert main(["artifacts", "--data", str(bad), "--size", "12", "--out", str(tmp_path / "o")]) == 2
    assert "corrupt.png" in capsys.readouterr().err
    assert main(["artifacts", "--data", str(bad), "--size", "12", "--skip-bad", "--out", str(tmp_path / "o")]) == 0
    assert main(["fit", "--data", str(bad), "--size", "12", "--skip-bad", "--epochs", "1", "--device", "cpu",
                 "--out", str(tmp_path / "fb")]) == 0  # splits still line up with the images that loaded
    assert sum(_json(tmp_path / "fb" / "results.json")["sizes"].values()) == 4 + 1 + 4 + 2  # corrupt.png left out
    (tmp_path / "w.pth").write_bytes(b"not weights")
    assert main(["artifacts", "--data", str(gm), "--space", "sl", "--weights", str(tmp_path / "w.pth"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "cannot read weights file" in capsys.readouterr().err
    (tmp_path / "m.pt").write_bytes(b"PK\x03\x04 truncated")
    assert main(["predict", "--model", str(tmp_path / "m.pt"), str(gm / "real"), "--out", str(tmp_path / "o")]) == 2
    assert "truncated or not a manifpt checkpoint" in capsys.readouterr().err
    (bad / "model_c").mkdir()
    assert main(["fit", "--data", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "model_c holds no images" in capsys.readouterr().err


@pytest.fixture(scope="module")
def factorial(tmp_path_factory):
    """4 models: two types (checker, blur) x two training sets (A: flat colours, B: noise textures). The
    sets differ in texture, which survives the subtraction of the nearest real (brightness would not)."""
    import numpy as np
    from helpers import save

    root = tmp_path_factory.mktemp("fact") / "gm"
    g = np.random.default_rng(0)

    def sample(kind):
        if kind == "A":
            return np.broadcast_to(g.integers(40, 216, (1, 1, 3)), (12, 12, 3)).astype(np.float64)
        return g.integers(40, 216, (12, 12, 3)).astype(np.float64)

    for i in range(30):
        for kind in "AB":
            save(root / "real" / f"{kind}{i}.png", sample(kind).astype(np.uint8))
    checker = ((np.indices((12, 12)).sum(0) % 2) * 30)[..., None]
    for name, kind, op in (("checker_A", "A", "checker"), ("checker_B", "B", "checker"), ("blur_A", "A", "blur"),
                           ("blur_B", "B", "blur")):
        for i in range(24):
            img = sample(kind)
            img = img + checker if op == "checker" else (img + np.roll(img, 1, 0) + np.roll(img, 1, 1)) / 3
            save(root / name / f"{i}.png", np.clip(img, 0, 255).astype(np.uint8))
    (root / "models.csv").write_text("model,type,training_set,upsampling\nchecker_A,checker,A,transposed\n"
                                     "checker_B,checker,B,transposed\nblur_A,blur,A,bilinear\nblur_B,blur,B,bilinear\n")
    return root


def test_training_data_and_layer_type(factorial, tmp_path, capsys):
    assert main(["experiment", "training-data", "--data", str(factorial), "--size", "12", "--spaces", "rgb", "--seeds", "2",
                 "--epochs", "8", "--device", "cpu", "--out", str(tmp_path / "t5")]) == 0
    rows = _json(tmp_path / "t5" / "results.json")["rows"]
    assert sorted(r["model_type"] for r in rows) == ["blur", "checker"]
    assert all(r["training_sets"] == ["A", "B"] and r["chance"] == 0.5 and len(r["accuracies"]) == 2 for r in rows)
    assert max(r["accuracy_mean"] for r in rows) > 0.7  # dark vs bright training sets leave distinct artifacts
    assert main(["experiment", "layer-type", "--data", str(factorial), "--size", "12", "--spaces", "rgb,freq",
                 "--device", "cpu", "--out", str(tmp_path / "t6")]) == 0
    rows = _json(tmp_path / "t6" / "results.json")["rows"]
    assert {(r["space"], r["factor"]) for r in rows} == {(s, f) for s in ("rgb", "freq") for f in ("training_set", "type", "upsampling")}
    nmi = {(r["space"], r["factor"]): r["nmi"] for r in rows}
    for space in ("rgb", "freq"):  # type and upsampling split the models the same way here: the same NMI
        assert nmi[(space, "type")] == nmi[(space, "upsampling")]
    assert "NMI" in capsys.readouterr().out
    assert main(["experiment", "training-data", "--data", str(factorial), "--type-column", "family",
                 "--out", str(tmp_path / "x")]) == 2
    assert "no column 'family'" in capsys.readouterr().err
