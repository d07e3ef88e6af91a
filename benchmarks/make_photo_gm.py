"""A toy GM folder for timing the pipeline: python benchmarks/make_photo_gm.py ROOT [N=300]
(needs `pip install scikit-image`, whose sample photos it uses).

5 "models" x N images at 32x32. The reals are random 32x32 patches (2x subsampled) of scikit-image's
photos. Each "model" makes its images from other patches through one generator-like operation:
nearest-neighbour upsampling, a checkerboard pattern, a blur, noise, or colour quantisation. It is
not GM-Mini (real generative models, python/manifpt/data/gm_mini); it only fixes the sizes of the README's timing.
"""
import numpy as np, sys
from pathlib import Path
from PIL import Image
import skimage.data as d
root = Path(sys.argv[1]); n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
photos = [d.astronaut(), d.chelsea(), d.coffee(), d.rocket(), d.immunohistochemistry()]
g = np.random.default_rng(0)
def patch():
    p = photos[g.integers(len(photos))]
    y, x = g.integers(0, p.shape[0] - 64), g.integers(0, p.shape[1] - 64)
    return p[y:y + 64:2, x:x + 64:2, :3].astype(np.float32)
def save(path, a):
    path.parent.mkdir(parents=True, exist_ok=True); Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(path)
for i in range(n): save(root / "real" / f"{i:04d}.png", patch())
ops = {
  "nearest_up": lambda a: np.repeat(np.repeat(a[::2, ::2], 2, 0), 2, 1),
  "checkerboard": lambda a: a + 6 * ((np.indices((32, 32)).sum(0) % 2) * 2 - 1)[..., None],
  "blur": lambda a: (a + np.roll(a, 1, 0) + np.roll(a, 1, 1) + np.roll(np.roll(a, 1, 0), 1, 1)) / 4,
  "noise": lambda a: a + g.normal(0, 8, a.shape),
  "quantise": lambda a: np.round(a / 24) * 24,
}
for name, op in ops.items():
    for i in range(n): save(root / name / f"{i:04d}.png", op(patch()))
