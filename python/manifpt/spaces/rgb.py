"""rgb: the images themselves, (B, 3, H, W)."""
from __future__ import annotations

from .registry import Space, register
from .base import Embedder


class RGB(Embedder):
    name = "rgb"

    def _forward(self, x):
        return x


register(Space("rgb", "the pixels themselves, (3, H, W)", lambda weights=None, **kw: RGB(**kw)))
