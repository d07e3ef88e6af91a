"""GM-Mini: the real-set recipe, the zoo's models, the --quick build end to end, the shipped files and their
checksums, the loader, the factor design, and --data defaulting to gm-mini."""
import csv
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from manifpt.data import ImageFolderGM, load
from manifpt.data import gm_mini
from manifpt.data.gm_mini import build as gb
from manifpt.data.gm_mini import sheets
from manifpt.data.gm_mini import reals, zoo


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """GM-Mini materialized into a private cache, which MANIFPT_CACHE points at for the whole module."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("cache")
    mp.setenv("MANIFPT_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def shipped(cache):
    return gm_mini.materialize()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    manifest = gb.build(out, quick=True, jobs=2, progress=False)
    return out, manifest


# ------------------------------------------------------------------------------------------ real sets
def test_real_sets_shape_count_and_determinism():
    a, b = reals.photo_set(), reals.digits_set()
    assert a.shape == (1600, 32, 32, 3) and b.shape == (1797, 32, 32, 3)
    assert a.dtype == b.dtype == np.uint8
    assert np.array_equal(a, reals.photo_set()) and np.array_equal(b, reals.digits_set())
    assert len({x.tobytes() for x in a}) == len(a)  # no two patches alike
    # digits: the stroke is brighter than the background in every image (the colouring keeps the digit)
    grey = b.astype(float).mean(-1)
    assert (grey.reshape(len(b), -1).max(1) > grey[:, 0, 0] + 50).all()


def test_real_set_sources_are_checked(monkeypatch):
    bad = [(*s[:3], "0" * 64, s[4]) for s in reals.PHOTO_SOURCES]
    monkeypatch.setattr(reals, "PHOTO_SOURCES", bad)
    with pytest.raises(ValueError, match="astronaut.png"):
        reals.photo_set()


def test_real_set_mismatch_against_manifest_is_reported():
    manifest = json.loads((gm_mini.SHIPPED / "manifest.json").read_text())
    manifest["real_sets"]["digits"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match="'digits'"):
        gm_mini.real_set("digits", manifest)


# ------------------------------------------------------------------------------------------- the zoo
@pytest.mark.parametrize("spec", gb.ZOO[:12], ids=lambda s: s.type)
def test_every_model_type_trains_and_samples(spec):
    torch.manual_seed(0)
    m = zoo.make_model(spec.family, spec.upsampling, spec.normalization, spec.nonlinearity, spec.loss)
    if spec.family == "diffusion":
        m.sample_steps = 3
    opts = m.optimizers()
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    losses = [m.train(True).train_step(x, opts) for _ in range(3)]
    assert all(np.isfinite(losses))
    s = m.sample(4)
    assert s.shape == (4, 32, 32, 3) and s.dtype == torch.uint8


@pytest.mark.parametrize("normalization,nonlinearity", [("actnorm", "sigmoid"), ("none", "none")])
def test_flow_is_invertible(normalization, nonlinearity):
    f = zoo.Flow(normalization, nonlinearity)
    x = torch.randn(4, 3, 32, 32)
    f(x)  # actnorm's data-dependent initialisation
    with torch.no_grad():
        for layer in f.levels[0]:
            if isinstance(layer, zoo.AffineCoupling):  # non-trivial couplings (they start as the identity)
                torch.nn.init.normal_(layer.net[-1].weight, std=0.05)
        z, logdet = f(x)
        torch.testing.assert_close(f.inverse(z), x, rtol=1e-4, atol=1e-4)
    assert z.shape == (4, 48, 8, 8) and logdet.shape == (4,)
    torch.testing.assert_close(zoo.unsqueeze(zoo.squeeze(x)), x, rtol=0, atol=0)


def test_flow_logdet_matches_the_jacobian_on_one_step():
    """An ActNorm + InvConv1x1 + coupling step on a 4-channel 2x2 input: log|det J| by autograd == the layers' sum."""
    g = torch.Generator().manual_seed(0)
    layers = [zoo.ActNorm(4), zoo.InvConv1x1(4, g), zoo.AffineCoupling(4, 8)]
    torch.nn.init.normal_(layers[2].net[-1].weight, std=0.3)
    x0 = torch.randn(1, 4, 2, 2)
    layers[0](torch.randn(16, 4, 2, 2))  # initialise actnorm on other data

    def f(flat):
        y, total = flat.view(1, 4, 2, 2), 0.0
        for layer in layers:
            y, ld = layer(y)
            total = total + ld
        return y.flatten(), total

    jac = torch.autograd.functional.jacobian(lambda v: f(v)[0], x0.flatten())
    torch.testing.assert_close(f(x0.flatten())[1].reshape(()), torch.linalg.slogdet(jac)[1], rtol=1e-4, atol=1e-4)


def test_diffusion_respacing_with_every_step_is_plain_ddpm():
    """Kept steps = all T steps: the respaced betas (1 - abar_t / abar_{t-1}) are the training betas."""
    d = zoo.Diffusion("nearest", "group", steps=50)
    ab = d.alphas_bar.double()
    respaced = 1 - ab[1:] / ab[:-1]
    torch.testing.assert_close(respaced, d.betas.double()[1:], rtol=1e-5, atol=1e-7)


def test_sheet_roundtrip():
    x = np.random.default_rng(0).integers(0, 256, (37, 32, 32, 3), dtype=np.uint8)
    g = sheets.sheet(x)
    assert g.shape == (2 * 32, 25 * 32, 3)
    assert np.array_equal(sheets.unsheet(g, 37), x)
    assert np.array_equal(g[:32, 32:64], x[1])


# ----------------------------------------------------------------------------------- the design
def _rows():
    with open(gm_mini.SHIPPED / "models.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_zoo_design_covers_the_issue():
    rows = _rows()
    assert len(rows) >= 12
    assert {r["family"] for r in rows} == {"gan", "vae", "flow", "diffusion"}
    assert {r["upsampling"] for r in rows} >= {"transposed", "nearest", "bilinear", "pixelshuffle"}
    assert {r["loss"] for r in rows} >= {"nonsaturating", "lsgan", "wgan-gp", "elbo", "beta-elbo", "mle"}
    both = [t for t in {r["type"] for r in rows} if len({r["training_set"] for r in rows if r["type"] == t}) >= 2]
    assert len(both) >= 3
    assert [r["model"] for r in rows] == [s.model for s in gb.ZOO]


def test_factors_are_not_confounded():
    """For every pair of factors, some two models differ in one and not the other, in both directions, except
    loss given family: each loss belongs to one family by construction (an ELBO trains a VAE), so two models
    of different families always differ in loss."""
    rows = _rows()
    for a, b in itertools.permutations(gb.FACTORS, 2):
        witness = any(x[a] != y[a] and x[b] == y[b] for x, y in itertools.combinations(rows, 2))
        if (a, b) == ("family", "loss"):
            assert not witness
            continue
        assert witness, f"{a} never varies while {b} stays fixed"


# ------------------------------------------------------------------------------ the --quick build
def test_quick_build_end_to_end(quick, tmp_path):
    out, manifest = quick
    assert set(manifest["samples_per_model"]) == {s.model for s in gb.ZOO}
    assert gm_mini.verify(out) == manifest
    for s in gb.ZOO:
        x = gm_mini.samples(s.model, out)
        assert x.shape == (16, 32, 32, 3) and x.std() > 0
    training = json.loads((out / "training.json").read_text())
    assert all(np.isfinite(r["final_loss"]) and r["steps"] == 5 for r in training.values())
    ds = ImageFolderGM(gm_mini.materialize(tmp_path / "m", root=out))
    assert ds.models == sorted(s.model for s in gb.ZOO)
    assert len(ds.real_files) == 1600 + 1797 and len(ds.files) == 16 * len(gb.ZOO)
    assert set(ds.factors) == set(ds.models)  # models.csv covers every folder
    digits = ImageFolderGM(ds.root, where={"training_set": "digits"})
    assert digits.models == ["dcgan_digits", "ddpm_digits", "vae_digits"] and len(digits.files) == 48
    with pytest.raises(ValueError, match="no column"):
        ImageFolderGM(ds.root, where={"colour": "red"})
    with pytest.raises(ValueError, match="no model"):
        ImageFolderGM(ds.root, where={"family": "autoregressive"})


def test_build_resumes_and_is_deterministic(quick, tmp_path):
    out, manifest = quick
    only = ["dcgan_photo", "vae_digits"]
    for sub, name in (("records", "vae_digits.json"), ("samples", "vae_digits.png")):  # built already: skipped
        (tmp_path / sub).mkdir()
        shutil.copy2(out / sub / name, tmp_path / sub)
    stamp = (tmp_path / "samples" / "vae_digits.png").stat().st_mtime_ns
    again = gb.build(tmp_path, quick=True, jobs=1, only=only, progress=False)
    assert (tmp_path / "samples" / "vae_digits.png").stat().st_mtime_ns == stamp  # not retrained
    assert not (tmp_path / "checkpoints" / "vae_digits.pt").exists()
    key = "samples/dcgan_photo.png"
    assert again["files"][key] == manifest["files"][key]  # same seed, same bytes


def test_build_with_seeds(quick, tmp_path):
    """--seeds K: the same model K times, one seed apart; seed 0 is the zoo's own (the same samples), and
    models.csv gets a seed column that the experiments read as a design factor."""
    out, manifest = quick
    again = gb.build(tmp_path, quick=True, jobs=1, only=["dcgan_photo"], seeds=2, progress=False)
    assert list(again["samples_per_model"]) == ["dcgan_photo_seed0", "dcgan_photo_seed1"]
    assert again["files"]["samples/dcgan_photo_seed0.png"] == manifest["files"]["samples/dcgan_photo.png"]
    assert again["files"]["samples/dcgan_photo_seed1.png"] != manifest["files"]["samples/dcgan_photo.png"]
    rows = list(csv.DictReader((tmp_path / "models.csv").open()))
    assert [(r["model"], r["type"], r["seed"]) for r in rows] == [("dcgan_photo_seed0", "dcgan", "1000"),
                                                                    ("dcgan_photo_seed1", "dcgan", "2000")]
    assert "seed" not in (out / "models.csv").read_text().splitlines()[0]  # the zoo itself: no seed column
    assert gb.main(["materialize", "--root", str(tmp_path), "--out", str(tmp_path / "folder")]) == 0
    ds = gm_mini.load(tmp_path, out=tmp_path / "folder")  # the folder just written
    assert ds.models == ["dcgan_photo_seed0", "dcgan_photo_seed1"] and ds.factors["dcgan_photo_seed1"]["seed"] == "2000"
    with pytest.raises(ValueError, match="--seeds must be >= 1"):
        gb.build(tmp_path, quick=True, only=["dcgan_photo"], seeds=0)


def test_verify_reports_a_corrupt_file(quick, tmp_path):
    out, _ = quick
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with open(copy / "samples" / "glow_photo.png", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="glow_photo.png is corrupt"):
        gm_mini.verify(copy)
    (copy / "models.csv").unlink()
    with pytest.raises(FileNotFoundError, match="models.csv"):
        gm_mini.verify(copy)


def test_build_cli_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gb.main(["build", "--out", str(tmp_path), "--jobs", "0"])
    with pytest.raises(ValueError, match="unknown models"):
        gb.build(tmp_path, quick=True, only=["nope"])


# ------------------------------------------------------------------------ the shipped dataset
def test_shipped_files_and_size():
    manifest = gm_mini.verify()
    assert not manifest["quick"]
    assert len(manifest["samples_per_model"]) >= 12 and min(manifest["samples_per_model"].values()) >= 500
    total = sum(f.stat().st_size for f in gm_mini.SHIPPED.rglob("*") if f.is_file())
    assert total < 25 * 2**20
    for name, info in manifest["real_sets"].items():
        assert info["count"] >= 1500, name


def test_load_gm_mini(shipped):
    ds = load("gm-mini")
    assert ds.root == shipped and ds.size == 32
    manifest = gm_mini.verify()
    assert ds.models == sorted(manifest["samples_per_model"])
    assert np.bincount(ds.labels).tolist() == [manifest["samples_per_model"][m] for m in ds.models]
    assert len(ds.real_files) == sum(v["count"] for v in manifest["real_sets"].values())
    images, labels, _ = ds.load([0, len(ds.files) - 1])
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [0, len(ds.models) - 1]
    # the materialized images are the shipped samples, bit for bit
    first = ds.models[0]
    assert np.array_equal((images[0].permute(1, 2, 0) * 255).round().byte().numpy(), gm_mini.samples(first)[0])
    assert gm_mini.materialize() == shipped  # cached: not written twice


def test_cli_commands_default_to_gm_mini(shipped, tmp_path):
    from manifpt.cli import main

    assert gm_mini.resolve(None) == shipped and gm_mini.resolve("GM-Mini") == shipped
    assert gm_mini.resolve(tmp_path) == Path(tmp_path)
    assert main(["experiment", "layer-type", "--spaces", "freq", "--factors", "upsampling", "--out", str(tmp_path / "lt")]) == 0
    r = json.loads((tmp_path / "lt" / "results.json").read_text())
    assert r["data"] == str(shipped) and r["rows"][0]["factor"] == "upsampling"
    assert main(["experiment", "model-type", "--where", "training_set", "--out", str(tmp_path / "mt")]) == 2
    assert main(["project", "--out", str(tmp_path / "p")]) == 0
    index = np.load(tmp_path / "p" / "index.npy")
    assert len(index) == len(load("gm-mini").files) and index.max() < 1600 + 1797


# ------------------------------------------------------------------------------------------ demo
def test_demo_quick_preset_at_smoke_size(quick, tmp_path, monkeypatch):
    """The demo's three studies end to end on the --quick build (16 images per model), with the quick preset
    cut to one seed and one epoch."""
    from manifpt.demo import PRESETS, run_demo

    out, _ = quick
    root = gm_mini.materialize(tmp_path / "data", root=out)
    preset = {**PRESETS["quick"], "seeds": 1, "epochs": 1, "td_seeds": 1, "td_epochs": 1,
              "baselines": ("mccloskey18", "durall20")}
    r = run_demo(tmp_path / "demo", data=root, preset=preset)
    assert list(r["tables"]) == ["model-type", "training-data", "layer-type"]
    assert "| ManiFPT | freq |" in r["tables"]["model-type"] and "durall20" in r["tables"]["model-type"]
    assert "dcgan" in r["tables"]["training-data"] and "upsampling" in r["tables"]["layer-type"]
    assert all(Path(f).is_file() for f in r["figures"]) and any(f.endswith("tsne.png") for f in r["figures"])
    summary = (tmp_path / "demo" / "summary.md").read_text()
    assert sum(line.startswith("|---") for line in summary.splitlines()) == 3  # the three tables

    # --resume keeps the finished studies: nothing is run again, the tables are the same
    from manifpt.experiments import layer_type, model_type, training_data

    def refuse(*a, **kw):
        raise AssertionError("a finished study ran again")
    for module, study in ((model_type, "run_model_type"), (training_data, "run_training_data"), (layer_type, "run_layer_type")):
        monkeypatch.setattr(module, study, refuse)
    again = run_demo(tmp_path / "demo", data=root, preset=preset, resume=True)
    assert again["tables"] == r["tables"] and again["seconds"] == r["seconds"]
    with pytest.raises(ValueError, match="other settings"):
        run_demo(tmp_path / "demo", data=root, preset={**preset, "epochs": 2}, resume=True)
