"""Beyond the paper, at toy size: corruptions, calibration (temperature scaling, ECE), open-set thresholds and
unknown detection, and the robustness / open-set experiments from the CLI."""
import json
import math

import numpy as np
import pytest
import torch
from helpers import toy_artifacts as toy

from manifpt import metrics
from manifpt.attribute import Attributor, open_set_score
from manifpt.cli import main
from manifpt.corruptions import CORRUPTIONS, corrupt


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corruptions_keep_shape_and_range(kind):
    x = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    errors = []
    for s in CORRUPTIONS[kind]:
        y = corrupt(x, kind, s)
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
        errors.append(float((y - x).abs().mean()))
    assert errors == sorted(errors), f"{kind}: stronger settings must change the images more"  # levels go mild -> strong
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "sepia", 1)


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    # bin of 0.9: accuracy 0.5 vs confidence 0.9; bin of 0.6: accuracy 1.0 vs 0.6 -> (2 * 0.4 + 2 * 0.4) / 4
    assert metrics.expected_calibration_error(probs, labels) == pytest.approx(0.4)
    assert metrics.auroc([0.9, 0.8], [0.1, 0.85]) == pytest.approx(0.75)


class _FixedLogits(torch.nn.Module):
    """A model whose logits are known: the same vector z for every input."""

    def __init__(self, z):
        super().__init__()
        self.z = torch.nn.Parameter(torch.as_tensor(z, dtype=torch.float32), requires_grad=False)

    def forward(self, x):
        return self.z.expand(len(x), -1)


def test_temperature_scaling_fixes_an_overconfident_model():
    # Every validation image gets the logits z = [s, 0, 0] and 3/4 of them are of class 0. The NLL of
    # softmax(z / T) is then minimal exactly where the confidence e^(s/T) / (e^(s/T) + 2) equals the
    # accuracy 3/4, i.e. s / T = ln 6, whatever the float order: with s = 20 ln 6 the right T is 20,
    # the ECE drops from 1/4 (confidence ~1) to 0. A trained network cannot make that certain.
    x, _ = toy(60, seed=1)
    y = torch.tensor([0] * 45 + [1] * 10 + [2] * 5)
    att = Attributor(3, (3, 8, 8), epochs=1)
    att.model = _FixedLogits([20 * math.log(6), 0.0, 0.0])
    r = att.calibrate(x, y)
    assert r["ece_before"] == pytest.approx(0.25, abs=1e-6)
    assert r["temperature"] == pytest.approx(20, rel=1e-6)  # s itself is a float32: ~6e-8 off
    assert r["ece_after"] < 1e-6
    assert att.predict(x)[1][:, 0].mean().item() == pytest.approx(0.75, abs=1e-3)  # predict uses the calibrated T


def test_open_set_threshold_is_honoured_and_an_easy_unknown_is_detected():
    pattern = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(1234))

    def make(n, sign, seed):
        return sign * 0.05 * pattern + 0.01 * torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))

    x = torch.cat([make(40, 1, 1), make(40, -1, 2)])
    y = torch.tensor([0] * 40 + [1] * 40)
    xv = torch.cat([make(40, 1, 3), make(40, -1, 4)])
    yv = torch.tensor([0] * 40 + [1] * 40)
    unknown = make(40, 0, 5)  # no pattern at all: between the two known generators
    att = Attributor(2, (3, 8, 8), epochs=10, batch_size=16)
    att.fit(x, y, xv, yv, progress=False)
    for method in ("msp", "energy"):
        threshold = att.fit_open_set(xv, method, keep=0.9)
        s_val = open_set_score(att.logits(xv), method)
        assert (s_val < threshold).float().mean() <= 0.1 + 1 / 80  # the threshold keeps 90% of known images
        labels, _ = att.predict(torch.cat([xv, unknown]), open_set=True)
        scores = open_set_score(att.logits(torch.cat([xv, unknown])), method)
        assert torch.equal(labels == -1, scores < threshold)  # exactly the images under the threshold
        if method == "msp":  # between two known classes the max softmax drops; the energy need not
            assert (labels[80:] == -1).float().mean() >= 0.8  # the easy unknown is mostly flagged
    threshold = att.fit_open_set(xv, "fingerprint", 0.9, x, y)
    scores = att.open_set_scores(torch.cat([xv, unknown]))
    labels, _ = att.predict(torch.cat([xv, unknown]), open_set=True)
    assert torch.equal(labels == -1, scores < threshold) and (scores[:80] < threshold).float().mean() <= 0.1 + 1 / 80
    far = make(10, 6, 6)  # six times the pattern: far from both class means in the artifact space
    assert (att.predict(far, open_set=True)[0] == -1).all()
    with pytest.raises(ValueError, match="needs the training artifacts"):
        att.fit_open_set(xv, "fingerprint")
    with pytest.raises(ValueError, match="keep must be"):
        att.fit_open_set(xv, keep=0)


def test_cli_robustness_and_open_set(tmp_path, capsys):
    from helpers import make_gm_folder

    gm = make_gm_folder(tmp_path / "gm", n_real=20, n_model=15)
    assert main(["experiment", "robustness", "--data", str(gm), "--size", "12", "--spaces", "rgb", "--baselines",
                 "durall20", "--epochs", "1", "--augment", "--device", "cpu", "--out", str(tmp_path / "r")]) == 0
    r = json.loads((tmp_path / "r" / "results.json").read_text())
    assert r["augment"] and len(r["rows"]) == 2 * (1 + sum(len(v) for v in CORRUPTIONS.values()))
    assert (tmp_path / "r" / "robustness.png").is_file() and "jpeg 50" in capsys.readouterr().out
    assert main(["experiment", "open-set", "--data", str(gm), "--out", str(tmp_path / "o")]) == 2
    assert "at least 3 models" in capsys.readouterr().err
    from helpers import save

    g = np.random.default_rng(3)
    for i in range(15):  # a third generator: vertical stripes
        img = g.integers(0, 256, (20, 24, 3)).astype(np.float64)
        img[:, ::2] = 255
        save(gm / "model_c" / f"c{i}.png", img.astype(np.uint8))
    (gm / "models.csv").unlink()
    assert main(["experiment", "open-set", "--data", str(gm), "--size", "12", "--spaces", "rgb", "--baselines",
                 "mccloskey18", "--epochs", "2", "--device", "cpu", "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert len(r["rows"]) == 3 * 2 and [s["method"] for s in r["summary"]] == ["ManiFPT rgb", "mccloskey18"]
    for method in ("ManiFPT rgb", "mccloskey18"):  # each generator held out once; the summary is their mean
        mine = [x for x in r["rows"] if x["method"] == method]
        assert sorted(x["held_out"] for x in mine) == ["model_a", "model_b", "model_c"]
        summary = next(s for s in r["summary"] if s["method"] == method)
        assert summary["auroc"] == pytest.approx(np.mean([x["auroc"] for x in mine]))
