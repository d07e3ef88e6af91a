"""Small image folders made in the tests (no data files in the repo)."""
from pathlib import Path

import numpy as np
from PIL import Image


def save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def make_gm_folder(root: Path, n_real=12, n_model=6, size=(20, 24), seed=0) -> Path:
    """ROOT/real + ROOT/model_a + ROOT/model_b, with a JPEG, an RGBA and a grayscale image among them."""
    g = np.random.default_rng(seed)
    h, w = size
    for i in range(n_real):
        save(root / "real" / f"r{i:03d}.png", g.integers(0, 256, (h, w, 3), dtype=np.uint8))
    for model, shift in (("model_a", 40), ("model_b", -40)):
        for i in range(n_model):
            img = np.clip(g.integers(0, 256, (h, w, 3)) + shift, 0, 255).astype(np.uint8)
            save(root / model / "sub" / f"{model}_{i:03d}.png", img)
    save(root / "model_b" / "extra.jpg", g.integers(0, 256, (h, w, 3), dtype=np.uint8))
    save(root / "model_b" / "rgba.png", g.integers(0, 256, (h, w, 4), dtype=np.uint8))
    save(root / "model_a" / "gray.png", g.integers(0, 256, (h, w), dtype=np.uint8))
    (root / "models.csv").write_text("model,family,upsampling\nmodel_a,GAN,nearest\nmodel_b,VAE,transposed\n")
    return root
