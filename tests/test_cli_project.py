"""`manifpt project` on .npy arrays: one process and torchrun with 2 ranks give one project call's
result, every row written once; bad inputs get clear errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import manifpt_ext
from manifpt.cli import main


@pytest.fixture
def arrays(tmp_path):
    g = np.random.default_rng(0)
    f, r = tmp_path / "fakes.npy", tmp_path / "reals.npy"
    np.save(f, g.standard_normal((103, 3, 4, 4), dtype=np.float32))
    y = g.standard_normal((250, 3, 4, 4), dtype=np.float32)
    np.save(r, np.concatenate([y, y[:30]]))  # duplicates: ties across shards
    one = manifpt_ext.project(torch.from_numpy(np.load(f)), torch.from_numpy(np.load(r)))
    return f, r, one


def _check(out, one):
    assert np.array_equal(np.load(out / "index.npy"), one.index.numpy())
    assert np.array_equal(np.load(out / "artifacts.npy"), one.artifact.numpy())
    assert np.array_equal(np.load(out / "distance.npy"), one.distance.numpy())
    assert not (out / ".partial").exists()
    return json.loads((out / "manifest.json").read_text())


def test_single_process(arrays, tmp_path):
    f, r, one = arrays
    assert main(["project", "--fakes", str(f), "--reals", str(r), "--out", str(tmp_path / "o"), "--batch", "17",
                 "--memory-budget-mb", "1"]) == 0
    assert _check(tmp_path / "o", one)["world_size"] == 1


def test_torchrun_two_ranks(arrays, tmp_path):
    f, r, one = arrays
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "manifpt.cli",
           "project", "--fakes", str(f), "--reals", str(r), "--out", str(tmp_path / "o"), "--batch", "10", "--timeout", "60"]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert _check(tmp_path / "o", one)["world_size"] == 2


def test_bad_inputs(arrays, tmp_path, capsys):
    f, r, _ = arrays
    out = str(tmp_path / "o")
    assert main(["project", "--fakes", str(tmp_path / "nope.npy"), "--reals", str(r), "--out", out]) == 2
    assert "--fakes" in (err := capsys.readouterr().err) and "does not exist" in err
    np.save(tmp_path / "ints.npy", np.zeros((4, 3, 4, 4), dtype=np.int32))
    assert main(["project", "--fakes", str(tmp_path / "ints.npy"), "--reals", str(r), "--out", out]) == 2
    assert "dtype int32" in capsys.readouterr().err
    np.save(tmp_path / "other.npy", np.zeros((4, 3, 5, 5), dtype=np.float32))
    assert main(["project", "--fakes", str(tmp_path / "other.npy"), "--reals", str(r), "--out", out]) == 2
    assert "must share the per-sample shape" in capsys.readouterr().err
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    assert main(["project", "--fakes", str(tmp_path / "junk.npy"), "--reals", str(r), "--out", out]) == 2
    assert "not a readable .npy" in capsys.readouterr().err
    assert main(["project", "--fakes", str(f), "--reals", str(r), "--out", out, "--batch", "0"]) == 2
    assert "--batch must be >= 1" in capsys.readouterr().err


def test_image_folders_freq_space_two_ranks(tmp_path):
    from helpers import make_gm_folder

    from manifpt.data import list_images, load_images

    root = make_gm_folder(tmp_path / "gm", n_real=30)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "manifpt.cli",
           "project", "--fakes", str(root / "model_b"), "--reals", str(root / "real"), "--space", "freq", "--size", "12",
           "--out", str(tmp_path / "o"), "--batch", "3", "--timeout", "60"]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    fakes, _ = load_images(list_images(root / "model_b"), 12)
    reals, _ = load_images(list_images(root / "real"), 12)
    one = manifpt_ext.project(manifpt_ext.freq_embed(fakes), manifpt_ext.freq_embed(reals))
    manifest = _check(tmp_path / "o", one)
    assert manifest["world_size"] == 2 and manifest["space"] == "freq"
