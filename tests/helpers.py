"""What the tests build: tensor pairs with a known answer, toy artifacts, small image folders (no data files in
the repo). Imported by the test files as `from helpers import ...`; fixtures live in conftest.py."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import manifpt_ext

requires_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and manifpt_ext.cuda_available()),
    reason="needs a CUDA device and a build with the CUDA kernels",
)


def make_pair(m, n, shape, dtype=torch.float32, device="cpu", seed=0, offset=0.0, noise=1.0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(shape, generator=g) * offset
    x = base + noise * torch.randn((m, *shape), generator=g)
    y = base + noise * torch.randn((n, *shape), generator=g)
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)


def assert_matches_reference(p, fakes, reals):
    r = manifpt_ext.project_reference(fakes, reals)
    assert p.index.dtype == torch.long and p.distance.dtype == torch.float32
    assert p.artifact.shape == fakes.shape and p.artifact.dtype == fakes.dtype
    torch.testing.assert_close(p.index.cpu(), r.index.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(p.artifact.cpu(), r.artifact.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(p.distance.cpu(), r.distance.cpu(), rtol=1e-5, atol=1e-6)


def toy_artifacts(n=60, shape=(3, 8, 8), k=3, seed=0):
    """n artifacts of k classes: a fixed pattern per class (scale 0.05) plus per-seed noise (0.02)."""
    y = torch.arange(n) % k
    pattern = torch.randn(k, *shape, generator=torch.Generator().manual_seed(1234))  # the classes: fixed
    g = torch.Generator().manual_seed(seed)  # the samples: per seed
    x = 0.05 * pattern[y] + 0.02 * torch.randn(n, *shape, generator=g)
    return x, y


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
