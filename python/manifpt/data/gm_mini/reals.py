"""The real training sets of GM-Mini, rebuilt deterministically from images that PyPI packages ship.

Nothing is downloaded: the sources are files inside the installed scikit-image, scikit-learn and
matplotlib wheels. Each source file is checked against the SHA-256 recorded here, and each built set
against the SHA-256 of its bytes (recorded in the shipped manifest), so a package release that changes
an image is reported instead of silently shifting every artifact.

- `photo`: 1600 patches of 32x32 RGB from 11 colour photographs. Each patch is a square crop of side
  64..160 px at a seeded random position, downscaled with Pillow's LANCZOS filter (antialiased).
- `digits`: the 1797 handwritten digits of scikit-learn (8x8, 17 grey levels, from the UCI optdigits
  set), upscaled bilinearly to 32x32 and coloured: each digit gets a seeded dark background and a
  bright stroke colour, so both sets are genuinely RGB and of the same shape.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ...io import sha256_file

SIZE = 32
PHOTO_COUNT = 1600
PHOTO_SEED = 20261128
DIGITS_SEED = 1797


def _skimage(name: str) -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent / name


def _sklearn(name: str) -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images" / name


def _matplotlib(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


# (package, file, where it is, SHA-256 of the file, licence as its package states it)
PHOTO_SOURCES = [
    ("scikit-image", "astronaut.png", _skimage, "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
     "public domain (NASA, Eileen Collins portrait)"),
    ("scikit-image", "chelsea.png", _skimage, "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
     "CC0 (Stefan van der Walt)"),
    ("scikit-image", "coffee.png", _skimage, "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
     "CC0 (Rachel Michetti)"),
    ("scikit-image", "rocket.jpg", _skimage, "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
     "public domain (SpaceX, DSCOVR launch)"),
    ("scikit-image", "hubble_deep_field.jpg", _skimage, "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
     "public domain (NASA / ESA)"),
    ("scikit-image", "ihc.png", _skimage, "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef",
     "no known copyright restrictions (CMMI, IHC staining)"),
    ("scikit-image", "retina.jpg", _skimage, "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6",
     "CC0 1.0 (Mikael Häggström, via Wikimedia)"),
    ("scikit-image", "motorcycle_left.png", _skimage, "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
     "Middlebury 2014 stereo set (Scharstein et al., GCPR 2014)"),
    ("scikit-learn", "china.jpg", _sklearn, "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
     "CC BY 2.0 (danielbuechele, Flickr)"),
    ("scikit-learn", "flower.jpg", _sklearn, "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638",
     "CC BY 2.0 (vultilion, Flickr)"),
    ("matplotlib", "grace_hopper.jpg", _matplotlib, "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
     "public domain (US Navy photograph)"),
]


def sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def source_files(check: bool = True) -> list[tuple[str, Path]]:
    """(name, path) of every photo source; with `check`, each file's SHA-256 must match the record."""
    out = []
    for package, name, where, digest, _ in PHOTO_SOURCES:
        try:
            path = where(name)
        except ImportError as e:
            raise ImportError(f"GM-Mini's real set 'photo' needs {package} installed (pip install {package})") from e
        if not path.is_file():
            raise FileNotFoundError(f"GM-Mini's real set 'photo' needs {name} from {package}, not found at {path}")
        if check and sha256_file(path) != digest:
            raise ValueError(f"{path} ({package}) differs from the file GM-Mini was built from (SHA-256 {digest}): "
                             "a package release changed it, so the real set would change")
        out.append((name, path))
    return out


def photo_set(count: int = PHOTO_COUNT, seed: int = PHOTO_SEED) -> np.ndarray:
    """(count, 32, 32, 3) uint8: square crops of side 64..160 px (or the photo's short side), LANCZOS to 32x32,
    spread evenly over the photos in the order of PHOTO_SOURCES."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = []
    for _, path in source_files():
        with Image.open(path) as im:
            photos.append(im.convert("RGB"))
    out = np.empty((count, SIZE, SIZE, 3), np.uint8)
    for i in range(count):
        im = photos[i % len(photos)]
        w, h = im.size
        side = int(min(rng.integers(64, 161), w, h))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        patch = im.crop((x, y, x + side, y + side)).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
        out[i] = np.asarray(patch, np.uint8)
    return out


def digits_set(seed: int = DIGITS_SEED) -> np.ndarray:
    """(1797, 32, 32, 3) uint8: scikit-learn's digits, bilinear to 32x32, a dark background and a bright stroke
    colour per digit."""
    from PIL import Image
    from sklearn.datasets import load_digits

    images = load_digits().images  # (1797, 8, 8), values 0..16
    rng = np.random.default_rng(seed)
    out = np.empty((len(images), SIZE, SIZE, 3), np.uint8)
    for i, d in enumerate(images):
        grey = Image.fromarray(np.round(d * (255 / 16)).astype(np.uint8), "L").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
        a = np.asarray(grey, np.float64)[..., None] / 255.0
        background = rng.uniform(0.0, 0.35, 3)
        stroke = rng.uniform(0.6, 1.0, 3)
        out[i] = np.round(255 * (background * (1 - a) + stroke * a)).astype(np.uint8)
    return out


REAL_SETS = {"photo": photo_set, "digits": digits_set}


def build_real(name: str) -> np.ndarray:
    if name not in REAL_SETS:
        raise ValueError(f"unknown GM-Mini real set {name!r}; known: {sorted(REAL_SETS)}")
    return REAL_SETS[name]()
