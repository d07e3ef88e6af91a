"""freq: the channelwise 2-D FFT of each image, log1p of the fftshifted magnitude, (B, 3, H, W)
(manifpt_ext.freq_embed, which says why the log-magnitude and not the complex spectrum)."""
from __future__ import annotations

import torch

from .registry import Space, register
from .base import Embedder


class Freq(Embedder):
    name = "freq"

    def __init__(self, mode: str = "logmag", **kw):
        super().__init__(**kw)
        from manifpt_ext import freq_embed

        freq_embed(torch.zeros(1, 1, 2, 2), mode)  # validates the mode now
        self.mode = mode

    def key(self):
        return f"freq-{self.mode}"

    def _forward(self, x):
        from manifpt_ext import freq_embed

        return freq_embed(x, self.mode)


register(Space("freq", "channelwise FFT log-magnitude spectrum, (3, H, W)", lambda weights=None, **kw: Freq(**kw)))
