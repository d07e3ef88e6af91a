"""Attribution in the wild at toy size: the processing chain (seeded, in range, by hand where it can be),
the scores of one seed on hand-made probabilities, the leave-one-model-out split, and `experiment wild`
from the CLI (with resume); NPR and FSD through the other studies' registry."""
import json

import numpy as np
import pytest
import torch
from helpers import make_gm_folder, save

from manifpt.cli import main
from manifpt.corruptions import WILD, apply_chain, wild_chain, wild_params
from manifpt.experiments.wild import COLUMNS, scores, seed_rows


def test_wild_params_are_seeded_and_in_range():
    p = wild_params(200, seed=3, stream=1)
    assert p == wild_params(200, seed=3, stream=1) and p != wild_params(200, seed=3, stream=2)
    assert all(sorted(x["order"]) == sorted(WILD) for x in p)
    assert len({tuple(x["order"]) for x in p}) == 6  # all 3! orders occur in 200 draws
    q = [x["jpeg"] for x in p]
    assert min(q) >= 30 and max(q) <= 95 and all(isinstance(v, int) for v in q)
    assert all(0.5 <= x["resize"] <= 1.5 and 0.7 <= x["crop"] <= 1.0 for x in p)


def test_chain_crop_by_hand_and_shapes():
    x = torch.full((3, 20, 20), 0.8)
    x[:, :10, :10] = 0.3
    # a crop of half the side from the top-left corner: the constant quadrant, resized back
    out = apply_chain(x, {"order": ["crop"], "crop": 0.5, "top": 0.0, "left": 0.0})
    assert out.shape == (3, 20, 20) and torch.allclose(out, torch.full_like(out, 0.3), atol=1e-6)
    same = apply_chain(x, {"order": ["resize", "crop"], "resize": 1.0, "crop": 1.0, "top": 0.5, "left": 0.5})
    assert torch.allclose(same, x, atol=1e-6)  # factor 1 and a full crop leave the image as it is
    imgs = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    a, b = wild_chain(imgs, 0), wild_chain(imgs, 0)
    assert torch.equal(a, b) and a.shape == imgs.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, wild_chain(imgs, 1))
    with pytest.raises(ValueError, match="wild_chain: images must be"):
        wild_chain(torch.rand(2, 16, 16), 0)


def test_scores_by_hand():
    # classes: 0, 1 known generators, 2 = real; rows 0-3 test fakes, 4-5 test reals, 6-7 the held-out generator
    y = np.array([0, 1, 0, 1, 2, 2, -1, -1])
    probs = np.array([[.8, .1, .1], [.1, .8, .1], [.7, .2, .1], [.3, .6, .1],
                      [.1, .1, .8], [.2, .1, .7], [.4, .3, .3], [.35, .35, .3]])
    conf = probs.max(axis=1)
    rows = {"test": np.arange(6), "unknown": np.array([6, 7])}
    s = scores(probs, conf, y, rows, real=2)
    # every fake has P(real) <= 0.3 < 0.7: real vs fake perfectly separated; the unknowns' confidence
    # (0.4, 0.35) is under every known fake's (>= 0.6): open set perfectly separated too
    assert s == {"accuracy": 1.0, "rvf_auroc": 1.0, "rvf_ap": 1.0, "open_auroc": 1.0, "open_ap": 1.0}
    s = scores(probs, -conf, y, rows, real=2)  # the confidence upside down: the unknowns look most known
    assert s["open_auroc"] == 0.0 and s["open_ap"] == pytest.approx((1 / 5 + 2 / 6) / 2)
    probs[0] = [.1, .2, .7]  # a fake taken for real, and among the generators for class 1
    s = scores(probs, conf, y, rows, real=2)
    assert s["accuracy"] == 0.75 and s["rvf_auroc"] == pytest.approx(1 - 0.5 / 12)  # one tie in 6 x 2 pairs


def test_seed_rows_hold_one_model_out():
    y_all = torch.tensor([0] * 10 + [1] * 10 + [2] * 10 + [3] * 10)  # three generators and the real class 3
    keep = torch.ones(40, dtype=torch.bool)
    keep[0] = False
    rows, y = seed_rows(y_all, 3, seed=0, held=1, keep=keep)
    assert torch.equal(rows["unknown"], torch.arange(10, 20))
    assert torch.equal(y[:10], torch.zeros(10, dtype=torch.long)) and (y[10:20] == -1).all()
    assert (y[20:30] == 1).all() and (y[30:] == 2).all()  # real is the last class
    seen = torch.cat([rows["train"], rows["val"], rows["test"]])
    assert sorted(seen.tolist()) == [*range(1, 10), *range(20, 40)]  # the held-out model and row 0 nowhere


def _three_models(tmp_path):
    gm = make_gm_folder(tmp_path / "gm", n_real=24, n_model=14)
    g = np.random.default_rng(3)
    for i in range(14):  # a third generator: vertical stripes
        img = g.integers(0, 256, (20, 24, 3)).astype(np.uint8)
        img[:, ::2] = 255
        save(gm / "model_c" / f"c{i}.png", img)
    (gm / "models.csv").unlink()
    return gm


def test_cli_wild_and_resume(tmp_path, capsys):
    gm = _three_models(tmp_path)
    argv = ["experiment", "wild", "--data", str(gm), "--size", "20", "--spaces", "rgb", "--baselines", "fsd,npr,durall20",
            "--seeds", "2", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "w")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    r = json.loads((tmp_path / "w" / "results.json").read_text())
    methods = [(x["method"], x["space"]) for x in r["rows"]]
    assert methods == [("ManiFPT", "rgb"), ("control: images", "pixels"), ("fsd", "-"), ("npr", "-"), ("durall20", "-")]
    assert len(r["per_seed"]) == 5 * 2 and all(x["seeds"] == [0, 1] for x in r["rows"])
    assert len(set(r["held_out"])) == 2 and set(r["held_out"]) <= {"model_a", "model_b", "model_c"}
    assert r["real_class_images"] == 12 and r["manifold_reals"] == 12  # half the 24 reals each
    for row in r["rows"]:
        mine = [x["rvf_auroc"] for x in r["per_seed"] if x["method"] == row["method"]]
        assert row["rvf_auroc_mean"] == pytest.approx(np.mean(mine))
    assert all(h in printed for h, _ in COLUMNS)
    before = (tmp_path / "w" / "progress.json").read_text()
    assert main([*argv, "--resume"]) == 0  # everything finished: nothing is trained again
    assert json.loads((tmp_path / "w" / "results.json").read_text())["per_seed"] == r["per_seed"]
    assert (tmp_path / "w" / "progress.json").read_text() == before
    assert main([*argv[:-2], "--out", str(tmp_path / "w"), "--resume", "--chain-seed", "1"]) == 2
    assert "other settings (chain_seed)" in capsys.readouterr().err


def test_anchors_run_in_the_other_studies(tmp_path):
    gm = _three_models(tmp_path)
    common = ["--data", str(gm), "--size", "20", "--spaces", "none", "--baselines", "fsd,npr", "--epochs", "1",
              "--device", "cpu"]
    assert main(["experiment", "open-set", *common, "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [s["method"] for s in r["summary"]] == ["fsd", "npr"] and len(r["rows"]) == 2 * 3
    assert main(["experiment", "model-type", *common, "--seeds", "1", "--out", str(tmp_path / "m")]) == 0
    r = json.loads((tmp_path / "m" / "results.json").read_text())
    assert [x["method"] for x in r["rows"]] == ["fsd", "npr"]
    assert main(["experiment", "robustness", *common, "--out", str(tmp_path / "r")]) == 0
    r = json.loads((tmp_path / "r" / "results.json").read_text())
    assert {x["method"] for x in r["rows"]} == {"fsd", "npr"}
