"""The real manifold: the real images embedded once, and the artifacts of fakes against them.

`RealManifold(embedder, reals, cache_dir=...)` embeds the reals (a (N, 3, H, W) tensor in [0, 1], or
image files) once and caches the embedding as .npy under cache_dir. The cache key hashes:
- the embedder (space, settings, weights hash);
- the data: the pixels for a tensor, the paths, sizes and mtimes for files, plus the image size.
Writes are atomic, and the cache is read without unpickling.

`.artifacts(fakes, neighbour_space=None)` returns Artifacts(artifact, index, distance, identical):
- neighbour_space=None (default, as the paper's text says): the nearest real is searched in the
  embedding space itself, and artifact = embed(fake) - embed(real*).
- neighbour_space="rgb" (as the authors' released code does): the nearest real is searched in RGB,
  and the difference is still taken in the embedding space, artifact = embed(fake) - embed(real*_rgb).
  `distance` is then the RGB one.
`identical[i]` is True when fake i equals its nearest real pixel for pixel. Its artifact is exactly
zero: a copy of a training image carries no fingerprint, and callers must not count it as one
(a warning says how many).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch

import manifpt_ext

from .data import load_images
from .spaces import Embedder
from .io import atomic_save_npy


class Artifacts(NamedTuple):
    artifact: torch.Tensor  # (M, *embedding shape)
    index: torch.Tensor  # (M,) int64, nearest real
    distance: torch.Tensor  # (M,) float32, squared distance in the neighbour space
    identical: torch.Tensor  # (M,) bool, fake == its nearest real pixel for pixel


class RealManifold:
    def __init__(
        self,
        embedder: Embedder,
        reals: torch.Tensor | Sequence[str | os.PathLike],
        *,
        size: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = False,
    ):
        self.embedder = embedder
        if isinstance(reals, torch.Tensor):
            if reals.dim() != 4 or reals.shape[1] != 3 or reals.shape[0] == 0:
                raise ValueError(f"RealManifold: reals must be a non-empty (N, 3, H, W) tensor, got {tuple(reals.shape)}")
            self.rgb = reals.float().contiguous()
            data_key = hashlib.sha256(self.rgb.numpy().tobytes()).hexdigest()
        else:
            paths = [Path(p) for p in reals]
            if not paths:
                raise ValueError("RealManifold: no real images given")
            self.rgb, keep = load_images(paths, size)
            h = hashlib.sha256(f"size={size}".encode())
            for i in keep:
                st = paths[i].stat()
                h.update(f"{paths[i].resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            data_key = h.hexdigest()
        self.key = hashlib.sha256(f"{embedder.key()}|{data_key}|{tuple(self.rgb.shape)}".encode()).hexdigest()[:24]
        self.cache_path = Path(cache_dir) / f"reals-{embedder.name}-{self.key}.npy" if cache_dir else None
        self.embedded = self._load_or_embed(progress)

    def _load_or_embed(self, progress: bool) -> torch.Tensor:
        if self.cache_path is not None and self.cache_path.is_file():
            try:
                arr = np.load(self.cache_path, allow_pickle=False)
                if arr.shape[0] == self.rgb.shape[0]:
                    return torch.from_numpy(arr)
            except (ValueError, OSError):
                pass  # unreadable cache: embed again and overwrite it
        emb = self.embedder.embed(self.rgb, progress=progress).contiguous()
        if self.cache_path is not None:
            atomic_save_npy(self.cache_path, emb.numpy())
        return emb

    def artifacts(self, fakes: torch.Tensor, neighbour_space: str | None = None) -> Artifacts:
        """Artifacts of fakes (M, 3, H, W) in [0, 1], of the reals' image size."""
        if fakes.dim() != 4 or tuple(fakes.shape[1:]) != tuple(self.rgb.shape[1:]):
            raise ValueError(
                f"RealManifold.artifacts: fakes must be (M, {', '.join(map(str, self.rgb.shape[1:]))}) like the reals, "
                f"got {tuple(fakes.shape)}"
            )
        if neighbour_space not in (None, "rgb", self.embedder.name):
            raise ValueError(f"neighbour_space must be None, 'rgb' or '{self.embedder.name}', got {neighbour_space!r}")
        fakes = fakes.float().contiguous()
        emb = self.embedder.embed(fakes)
        if neighbour_space == "rgb" and self.embedder.name != "rgb":
            p = manifpt_ext.project(fakes, self.rgb)
            artifact = emb - self.embedded[p.index]
        else:
            p = manifpt_ext.project(emb, self.embedded)
            artifact = p.artifact
        identical = (fakes == self.rgb[p.index]).flatten(1).all(dim=1)
        if identical.any():
            warnings.warn(
                f"{int(identical.sum())} of {len(identical)} fakes are pixel-identical to a real image: their artifact is "
                "zero and carries no fingerprint (see Artifacts.identical)",
                stacklevel=2,
            )
        return Artifacts(artifact, p.index, p.distance, identical)
