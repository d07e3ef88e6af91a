"""A fresh machine, bad input, interrupted and concurrent runs: nothing lost, nothing silently wrong.

Concurrent runs and signals are tested with real processes (`python -m manifpt.cli ...`)."""
import csv
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_gm_folder, save

import manifpt_ext
from manifpt.cli import main
from manifpt.io import OutputFolder, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gm(tmp_path_factory):
    return make_gm_folder(tmp_path_factory.mktemp("data") / "gm", n_real=30, n_model=20)


def _cli(*args, cwd, **kw):
    return subprocess.Popen([sys.executable, "-m", "manifpt.cli", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


# ------------------------------------------------------------------------------------ the README's commands
def test_import_from_the_repository_root():
    # The source folder manifpt_ext/ (no compiled _C in it) shadows the installed package from here.
    code = "import manifpt_ext, torch; p = manifpt_ext.project(torch.ones(2, 3), torch.zeros(4, 3)); print(p.index.tolist())"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[0, 0]"
    assert manifpt_ext._C.torch_version == torch.__version__  # built against the torch it runs with


def test_build_without_torch_says_install_torch_first(tmp_path):
    # CMake asks the interpreter being installed into for torch; one without it gets the message, not a 5 GB download.
    cmake = Path(sys.executable).with_name("cmake")
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    res = subprocess.run([str(cmake), "-S", str(ROOT), "-B", str(tmp_path / "b"), f"-DPython_EXECUTABLE={bare / 'bin' / 'python'}"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    if "Could NOT find Python" in out:
        pytest.skip("this machine's Python has no development headers: CMake stops before asking for torch")
    assert "torch is not installed" in out and "install torch first" in out


# ----------------------------------------------------------------------------------- silent wrong results
def test_a_held_output_folder_is_refused(tmp_path):
    f, r = tmp_path / "f.npy", tmp_path / "r.npy"
    np.save(f, np.zeros((3, 4), np.float32))
    np.save(r, np.ones((5, 4), np.float32))
    with OutputFolder(tmp_path / "out"):  # another run holds it
        res = _cli("project", "--fakes", f, "--reals", r, "--out", tmp_path / "out", cwd=tmp_path)
        _, err = res.communicate(timeout=120)
    assert res.returncode == 2 and "is in use by another manifpt run" in err and "pid" in err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_two_project_runs_into_one_folder(tmp_path):
    """Run A holds the folder (it is stopped with SIGSTOP once it does, so the order is certain); run B, started
    then, is refused; A, continued, leaves its own complete, correctly labelled result."""
    g = np.random.default_rng(0)
    for name, rows in (("fa", 300), ("ra", 2000), ("fb", 50), ("rb", 60)):
        np.save(tmp_path / f"{name}.npy", g.standard_normal((rows, 16), dtype=np.float32))
    out = tmp_path / "out"
    a = _cli("project", "--fakes", tmp_path / "fa.npy", "--reals", tmp_path / "ra.npy", "--out", out, "--batch", "7", cwd=tmp_path)
    lock = out / OutputFolder.LOCK
    deadline = time.time() + 120
    while not (lock.is_file() and lock.read_text().startswith("pid")):  # A holds the folder
        assert time.time() < deadline and a.poll() is None, a.communicate()[1][-2000:]
        time.sleep(0.01)
    a.send_signal(signal.SIGSTOP)
    try:
        b = _cli("project", "--fakes", tmp_path / "fb.npy", "--reals", tmp_path / "rb.npy", "--out", out, cwd=tmp_path)
        _, err_b = b.communicate(timeout=120)
    finally:
        a.send_signal(signal.SIGCONT)
    _, err_a = a.communicate(timeout=300)
    assert a.returncode == 0, err_a[-2000:]
    assert b.returncode == 2 and "in use by another manifpt run" in err_b, (b.returncode, err_b[-1000:])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reals"].endswith("ra.npy") and manifest["shape"]["fakes"][0] == 300
    one = manifpt_ext.project(torch.from_numpy(np.load(tmp_path / "fa.npy")), torch.from_numpy(np.load(tmp_path / "ra.npy")))
    assert np.array_equal(np.load(out / "index.npy"), one.index.numpy())
    assert np.array_equal(np.load(out / "artifacts.npy"), one.artifact.numpy())
    assert not (out / ".partial").exists()


def test_fit_resume_with_other_settings_is_refused(gm, tmp_path, capsys):
    common = ["--data", str(gm), "--size", "12", "--device", "cpu", "--epochs", "2", "--out", str(tmp_path / "f")]
    assert main(["fit", *common]) == 0
    model = (tmp_path / "f" / "model.pt").read_bytes()
    assert main(["fit", *common, "--space", "freq", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "another configuration (space differ)" in err and "--resume" in err
    assert (tmp_path / "f" / "model.pt").read_bytes() == model  # the old model is not relabelled


def _png16(path: Path, array: np.ndarray) -> Path:
    """A 16-bit PNG (Pillow cannot write 16-bit RGB), written by hand: 'gray' (H, W) or RGB (H, W, 3)."""
    import struct
    import zlib

    h, w = array.shape[:2]
    colour = 2 if array.ndim == 3 else 0
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def test_16_bit_and_float_images_are_decoded_in_scale(tmp_path):
    from PIL import Image

    from manifpt.data import BadImagesError, load_images

    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1024).astype(np.uint16)  # 0 .. 64512 of 65535
    gray16 = _png16(tmp_path / "g16.png", ramp)
    rgb16 = _png16(tmp_path / "c16.png", np.stack([ramp, ramp // 2, ramp // 4], -1))
    x, _ = load_images([gray16, rgb16])
    torch.testing.assert_close(x[0, 0], torch.from_numpy(ramp.astype(np.float32) / 65535), rtol=0, atol=1e-7)
    assert torch.equal(x[0, 0], x[0, 2])
    # Pillow keeps the high byte of 16-bit RGB: right in scale, to within one 8-bit step
    assert (x[1, 0] - torch.from_numpy(ramp / 65535.0).float()).abs().max() <= 1 / 255 + 1e-6
    assert (x[1, 1] - torch.from_numpy(ramp / 2 / 65535.0).float()).abs().max() <= 1 / 255 + 1e-6
    Image.fromarray(np.full((8, 8), 0.25, np.float32), mode="F").save(tmp_path / "f.tif")
    Image.fromarray(np.full((8, 8), 300, np.int32), mode="I").save(tmp_path / "i.tif")
    x, _ = load_images([tmp_path / "f.tif", tmp_path / "i.tif"])
    assert torch.all(x[0] == 0.25) and torch.allclose(x[1], torch.tensor(300 / 65535))
    Image.fromarray(np.full((8, 8), 7.5, np.float32), mode="F").save(tmp_path / "big.tif")
    with pytest.raises(BadImagesError, match=r"big\.tif: floating-point image with values 7\.5\.\.7\.5"):
        load_images([tmp_path / "big.tif"])
    x, _ = load_images([gray16], size=4)  # resized at its own depth, not 8 bits
    assert x.shape == (1, 3, 4, 4) and len(torch.unique(x)) > 4 and (x * 255 != (x * 255).round()).any()


# ------------------------------------------------------------------------------- tracebacks and late failures
def test_bad_out_is_refused_before_any_work(gm, tmp_path, capsys, monkeypatch):
    import manifpt.workflow

    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(manifpt.workflow, "load_dataset", lambda *a, **k: pytest.fail("work started before --out was checked"))
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        assert main(["artifacts", "--data", str(gm), "--out", str(out)]) == 2
        assert str(out) in (err := capsys.readouterr().err) and ("is a file" in err or "not writable" in err)
    for cmd in (["predict", "--model", str(tmp_path / "m.pt"), str(gm / "real")], ["evaluate", "--model", str(tmp_path / "m.pt")]):
        assert main([*cmd, "--out", str(tmp_path / "file")]) == 2
        assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["experiment", "model-type", "--data", str(gm), "--spaces", "none", "--out", str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists()  # a refused run leaves no folder behind


def test_training_checkpoint_given_as_model(gm, tmp_path, capsys):
    assert main(["fit", "--data", str(gm), "--size", "12", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "f")]) == 0
    assert main(["predict", "--model", str(tmp_path / "f" / "checkpoint.pt"), str(gm / "model_a"), "--out", str(tmp_path / "p")]) == 2
    assert "is a training checkpoint (for --resume), not a trained model" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "f"), str(gm / "model_a"), "--out", str(tmp_path / "p")]) == 2
    assert "is a folder, not a file" in capsys.readouterr().err


def test_project_bad_arrays(tmp_path, capsys):
    g = np.random.default_rng(0)
    np.save(tmp_path / "f.npy", g.standard_normal((20, 8), dtype=np.float32))
    reals = g.standard_normal((30, 8), dtype=np.float32)
    reals[17, 3] = np.nan
    np.save(tmp_path / "nan.npy", reals)
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "ok.npy", np.nan_to_num(reals))
    data = (tmp_path / "ok.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(data[: len(data) // 2])
    out = tmp_path / "o"
    for reals_file, message in (("nan.npy", "nan.npy contains NaN or Inf (first at row 17)"), ("empty.npy", "empty.npy is empty (0 bytes)"),
                                ("trunc.npy", "trunc.npy is not a readable .npy array"), (".", "holds no images")):
        code = main(["project", "--fakes", str(tmp_path / "f.npy"), "--reals", str(tmp_path / reals_file), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, err
        assert not (out / ".partial").exists() and not (out / "manifest.json").exists()


def test_stream_reports_global_rows_and_names_files(tmp_path):
    x = torch.randn(5, 4)
    y = torch.randn(40, 4)
    y[33, 1] = float("inf")
    with pytest.raises(RuntimeError, match=r"first at row 33\)"):
        manifpt_ext.project_stream(x, y, memory_budget=10 * 16)  # chunks of 10 rows: row 3 of the fourth chunk
    (tmp_path / "z.npy").write_bytes(b"")
    with pytest.raises(ValueError, match=r"z\.npy is empty"):
        manifpt_ext.project_stream(x, tmp_path / "z.npy")
    with pytest.raises(ValueError, match="is a folder"):
        manifpt_ext.project_stream(x, tmp_path)


def test_one_model_folder_gives_artifacts_without_fdr(tmp_path, capsys):
    root = make_gm_folder(tmp_path / "gm", n_real=10, n_model=5)
    import shutil

    shutil.rmtree(root / "model_b")
    (root / "models.csv").unlink()
    assert main(["artifacts", "--data", str(root), "--size", "12", "--device", "cpu", "--out", str(tmp_path / "a")]) == 0
    r = json.loads((tmp_path / "a" / "results.json").read_text())
    assert r["fdr"]["fdr"] is None and "one model" in r["fdr"]["reason"]
    assert "n/a (" in capsys.readouterr().out
    assert np.load(tmp_path / "a" / "artifacts.npy").shape == (6, 3, 12, 12)


def test_skip_bad_is_accepted_where_it_is_suggested(gm, tmp_path, capsys):
    assert main(["fit", "--data", str(gm), "--size", "12", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "f")]) == 0
    folder = tmp_path / "imgs"
    g = np.random.default_rng(7)  # not the seed of the reals: these must not be copies of them
    for i in range(3):
        save(folder / f"{i}.png", g.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    model = str(tmp_path / "f" / "model.pt")
    assert main(["predict", "--model", model, str(folder), "--out", str(tmp_path / "p")]) == 2
    assert "--skip-bad" in capsys.readouterr().err
    assert main(["predict", "--model", model, str(folder), "--skip-bad", "--out", str(tmp_path / "p")]) == 0
    r = json.loads((tmp_path / "p" / "results.json").read_text())
    assert len(r["predictions"]) == 3 and r["skipped"] == [str(folder / "bad.png")]
    rows = (tmp_path / "p" / "predictions.csv").read_text().splitlines()
    assert rows[0] == ("path,predicted,probability,unknown,nearest_known,nearest_real_index,nearest_real_distance,"
                       "identical_to_a_real") and len(rows) == 4
    for line, p in zip(csv.DictReader(rows), r["predictions"]):  # the CSV says what results.json says, per image
        assert (line["path"], line["predicted"], line["unknown"], int(line["nearest_real_index"])) == (
            p["file"], p["predicted"], str(p["unknown"]), p["nearest_real_index"])
        assert float(line["probability"]) == p["probability"]
        assert float(line["nearest_real_distance"]) == p["nearest_real_distance"]
    assert main(["evaluate", "--model", model, "--data", str(gm), "--skip-bad", "--out", str(tmp_path / "e")]) == 0
    assert main(["project", "--fakes", str(folder), "--reals", str(gm / "real"), "--size", "12", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.png" in err and "--skip-bad" not in err and "fix or remove them" in err


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_fit_says_how_to_resume(gm, tmp_path, sig, code):
    out = tmp_path / "f"
    # --patience 400: early stopping must not end the fit before the signal arrives (an epoch here is ~30 ms)
    args = ["fit", "--data", gm, "--size", "12", "--epochs", "400", "--patience", "400", "--device", "cpu", "--out", out]
    p = _cli(*args, cwd=tmp_path)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").is_file():  # training has started: at least one epoch is on disk
        assert time.time() < deadline and p.poll() is None, p.communicate()[1][-2000:]
        time.sleep(0.05)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err[-2000:]
    assert "to continue where it stopped: manifpt fit" in err and "--resume" in err.splitlines()[-1]
    assert not any(f.name.endswith(".tmp") for f in out.iterdir())  # no half-written file
    from manifpt.train import read_checkpoint

    assert read_checkpoint(out / "checkpoint.pt")["epoch"] >= 0  # what is there loads, and resumes


def test_values_near_the_float32_maximum_are_projected(tmp_path):
    big = torch.finfo(torch.float32).max / 2
    x = torch.tensor([[big, -big, 1.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([[-big, big, 0.0], [big, -big, 0.0], [0.0, 1.0, 0.0]])
    for dtype in (torch.float32, torch.bfloat16):
        p, r = manifpt_ext.project(x.to(dtype), y.to(dtype)), manifpt_ext.project_reference(x.to(dtype), y.to(dtype))
        assert p.index.tolist() == r.index.tolist() == [1, 2]
        assert torch.equal(p.artifact, r.artifact)


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_sigterm_during_an_experiment_says_how_to_resume(gm, tmp_path):
    out = tmp_path / "x"
    # 50 seeds: early stopping ends a toy seed in well under a second, so the run must still have many to
    # go when the signal arrives (it is killed long before they are done)
    p = _cli("experiment", "model-type", "--data", gm, "--size", "12", "--spaces", "rgb", "--seeds", "50", "--epochs", "300",
             "--device", "cpu", "--out", out, cwd=tmp_path)
    deadline = time.time() + 120
    while not (out / "rgb" / "seed0" / "checkpoint.pt").is_file():  # the first seed is training
        assert time.time() < deadline and p.poll() is None, p.communicate()[1][-2000:]
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("terminated (SIGTERM): to continue where it stopped: manifpt experiment model-type") and "--resume" in last
