"""GM-Mini: the embedded benchmark. 15 small generative models (GAN, VAE, flow, diffusion) trained on two real
sets of 32x32 RGB images that PyPI packages ship (photo patches and coloured digits), 500 samples each.

What ships (in `shipped/`, about 10 MB): the samples as PNG sheets, models.csv (design factors), training.json
(steps, loss curves) and manifest.json (SHA-256 of every file and of each real set). The real sets are not
shipped but rebuilt from their recipe (`reals.py`) and checked against the manifest.

    >>> from manifpt.data import load
    >>> ds = load("gm-mini")           # ImageFolderGM over ROOT/real/{photo,digits}/*.png + ROOT/<model>/*.png
    >>> ds.models, ds.factors["dcgan_photo"]

`materialize()` writes that folder once into the cache (MANIFPT_CACHE, else XDG_CACHE_HOME/manifpt, else
~/.cache/manifpt), keyed by the manifest, so every command can take it as `--data ROOT`.
`python -m manifpt.data.gm_mini build --out DIR` retrains the zoo from scratch (see build.py, docs/gm-mini.md).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from ...io import sha256_file
from . import reals as real_sets

NAME = "gm-mini"
SHIPPED = Path(__file__).parent / "shipped"


def verify(root: str | Path = SHIPPED) -> dict:
    """Checks every file of a built GM-Mini against its manifest; returns the manifest."""
    root = Path(root)
    path = root / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{root} is not a GM-Mini build: no manifest.json (build one with "
                                "`python -m manifpt.data.gm_mini build --out DIR`)")
    manifest = json.loads(path.read_text())
    for name, digest in manifest["files"].items():
        f = root / name
        if not f.is_file():
            raise FileNotFoundError(f"GM-Mini file {f} is missing (listed in {path})")
        if sha256_file(f) != digest:
            raise ValueError(f"GM-Mini file {f} is corrupt: its SHA-256 differs from {path}")
    return manifest


def samples(model: str, root: str | Path = SHIPPED, manifest: dict | None = None) -> np.ndarray:
    """The samples of one model, (n, 32, 32, 3) uint8, from its sheet."""
    from PIL import Image

    from .sheets import unsheet

    root = Path(root)
    manifest = manifest or json.loads((root / "manifest.json").read_text())
    if model not in manifest["samples_per_model"]:
        raise ValueError(f"GM-Mini has no model {model!r}; models: {sorted(manifest['samples_per_model'])}")
    with Image.open(root / "samples" / f"{model}.png") as im:
        grid = np.asarray(im.convert("RGB"))
    return unsheet(grid, manifest["samples_per_model"][model], manifest["size"], manifest["sheet_columns"])


def real_set(name: str, manifest: dict | None = None) -> np.ndarray:
    """One real set rebuilt from its recipe, (n, 32, 32, 3) uint8, checked against the manifest's SHA-256."""
    images = real_sets.build_real(name)
    manifest = manifest or json.loads((SHIPPED / "manifest.json").read_text())
    expected = manifest["real_sets"][name]["sha256"]
    if real_sets.sha256_array(images) != expected:
        raise ValueError(
            f"GM-Mini real set {name!r} rebuilt here differs from the one the zoo was trained on (SHA-256 {expected[:16]}...): "
            "a newer scikit-image / scikit-learn / matplotlib / Pillow changed a source image or its resampling. "
            "Install the versions in docs/gm-mini.md, or rebuild the zoo with `python -m manifpt.data.gm_mini build`.")
    return images


def cache_dir() -> Path:
    if os.environ.get("MANIFPT_CACHE"):
        return Path(os.environ["MANIFPT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "manifpt"


def _save_pngs(images: np.ndarray, folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    width = max(3, len(str(len(images) - 1)))
    for i, a in enumerate(images):
        Image.fromarray(a).save(folder / f"{i:0{width}d}.png", compress_level=1)


def materialize(out: str | Path | None = None, root: str | Path = SHIPPED) -> Path:
    """Writes GM-Mini as an image folder (ROOT/real/<set>/*.png, ROOT/<model>/*.png, models.csv) and returns ROOT.

    Verified first; written to a temporary sibling and renamed, so an interrupted or concurrent call (e.g. one
    per torchrun rank) never leaves a half-written folder behind."""
    root = Path(root)
    manifest = verify(root)
    key = sha256_file(root / "manifest.json")[:12]
    out = Path(out) if out is not None else cache_dir() / f"{NAME}-{key}"
    if (out / ".complete").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for name in manifest["real_sets"]:
            _save_pngs(real_set(name, manifest), tmp / "real" / name)
        for model in manifest["samples_per_model"]:
            _save_pngs(samples(model, root, manifest), tmp / model)
        for f in ("models.csv", "training.json", "manifest.json"):
            shutil.copyfile(root / f, tmp / f)
        (tmp / ".complete").write_text(key + "\n")
        if out.exists() and not (out / ".complete").is_file():
            shutil.rmtree(out)  # a folder left by an older, interrupted materialize
        try:
            os.rename(tmp, out)
        except OSError:
            if not (out / ".complete").is_file():  # another process won the race: fine; anything else: report
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load(root: str | Path = SHIPPED, out: str | Path | None = None, size: int | None = 32):
    """GM-Mini as an ImageFolderGM (materialized into the cache on first use)."""
    from ..folder import ImageFolderGM

    return ImageFolderGM(materialize(out, root), size=size)


def resolve(data: str | Path | None) -> Path:
    """A command's --data: None or 'gm-mini' -> the materialized GM-Mini folder; anything else -> that path."""
    if data is None or str(data).lower() == NAME:
        return materialize()
    return Path(data)
