"""The eight baselines of the paper's appendix D and two current anchors (NPR, CVPR 2024; FSD, CVPR 2025),
one file each, one interface (base.Baseline): fit(images, labels, val_images, val_labels), predict(images),
features(images), probabilities(images), and use_reals(reals) before fit for a baseline that models reals."""
from __future__ import annotations

from .base import Baseline
from .durall20 import Durall20
from .dzanic20 import Dzanic20
from .fsd import FSD
from .marra18 import Marra18
from .marra19 import Marra19
from .mccloskey18 import McCloskey18
from .nataraj19 import Nataraj19
from .npr import NPR
from .wang20 import Wang20
from .yu19 import Yu19

BASELINES = {b.name: b for b in (McCloskey18, Nataraj19, Durall20, Dzanic20, Wang20, Marra18, Marra19, Yu19, NPR, FSD)}


def make_baseline(name: str, **params) -> Baseline:
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}: choose from {', '.join(BASELINES)}")
    return BASELINES[name](**params)


__all__ = ["BASELINES", "Baseline", "make_baseline", *[c.__name__ for c in BASELINES.values()]]
