"""The CLI commands on a toy GM folder: artifacts, fit, predict, evaluate, experiment model-type,
and their errors (bad space, corrupt image, wrong weights, truncated checkpoint, empty model folder)."""
import json

import pytest
from images import make_gm_folder

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
    assert 0 <= r["accuracy"] <= 1 and sum(r["sizes"].values()) == 43 and len(r["history"]) == 2
    assert main(["fit", *common, "--epochs", "3", "--resume", "--out", str(tmp_path / "f")]) == 2  # config changed
    assert "another configuration" in capsys.readouterr().err

    assert main(["predict", "--model", str(tmp_path / "f" / "model.pt"), str(gm / "model_b"), "--device", "cpu",
                 "--out", str(tmp_path / "p")]) == 0
    preds = _json(tmp_path / "p" / "results.json")["predictions"]
    assert len(preds) == 22 and {p["predicted"] for p in preds} <= {"model_a", "model_b"}
    assert main(["evaluate", "--model", str(tmp_path / "f" / "model.pt"), "--data", str(gm), "--device", "cpu",
                 "--out", str(tmp_path / "e")]) == 0
    assert 0 <= _json(tmp_path / "e" / "results.json")["accuracy"] <= 1


def test_experiment_model_type(gm, tmp_path, capsys):
    assert main(["experiment", "model-type", "--data", str(gm), "--size", "12", "--spaces", "rgb,freq", "--seeds", "2",
                 "--epochs", "2", "--device", "cpu", "--out", str(tmp_path / "x")]) == 0
    r = _json(tmp_path / "x" / "results.json")
    assert [(row["method"], row["space"]) for row in r["rows"]] == [("ManiFPT", "rgb"), ("ManiFPT", "freq")]
    assert all(len(row["accuracies"]) == 2 and row["accuracy_std"] >= 0 and row["fdr"] > 0 for row in r["rows"])
    assert (tmp_path / "x" / "tsne.png").is_file()
    assert "accuracy % (mean +- std)" in capsys.readouterr().out


def test_experiment_with_baselines(gm, tmp_path, capsys):
    assert main(["experiment", "model-type", "--data", str(gm), "--size", "12", "--spaces", "none", "--baselines",
                 "mccloskey18,durall20", "--seeds", "2", "--device", "cpu", "--out", str(tmp_path / "b")]) == 0
    r = _json(tmp_path / "b" / "results.json")
    assert [row["method"] for row in r["rows"]] == ["mccloskey18", "durall20"] and r["baseline_preset"] == "cpu"
    assert main(["experiment", "model-type", "--data", str(gm), "--baselines", "fft9", "--out", str(tmp_path)]) == 2
    assert "unknown baseline(s) ['fft9']" in capsys.readouterr().err


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
