"""The spaces artifacts are taken in (the paper's section 3.2), as a registry.

    space = get_space("freq")
    embedder = space.embedder(weights=None, device="cpu")
    embedder.embed(images)          # (B, 3, H, W) in [0, 1] -> (B, *embedder.output_shape((3, H, W)))

Each entry says its name, whether it needs a weights file, and its help text (the CLI's choices and
help come from here). Adding a space is one file in this folder that defines an Embedder and calls
`register(Space(...))` (registry.py), plus its import below.
"""
from .base import Embedder
from .registry import Space, get_embedder, get_space, help_text, names, register
from . import rgb, freq, features  # noqa: E402,F401,I001  (each registers its spaces, in this order)

__all__ = ["Embedder", "Space", "get_embedder", "get_space", "help_text", "names", "register"]
