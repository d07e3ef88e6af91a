"""The one interface of every space: `embedder.embed(images, progress=False) -> Tensor`.

Images are float (B, 3, H, W) in [0, 1]; the work is batched (`batch_size`) on `device`, and the result
comes back on the CPU. `key()` identifies the map (name, settings, weights) for cache keys.
"""
from __future__ import annotations

import torch


class Embedder:
    name = "embedder"

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = batch_size

    def key(self) -> str:
        return self.name

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def embed(self, images: torch.Tensor, progress: bool = False) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"{self.name}: images must be a (B, 3, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}"
            )
        chunks = range(0, images.shape[0], self.batch_size)
        if progress:
            from tqdm import tqdm

            chunks = tqdm(chunks, desc=f"embed {self.name}", unit="batch")
        out = [self._forward(images[i : i + self.batch_size].to(self.device, torch.float32)).cpu() for i in chunks]
        if not out:
            return self._forward(images[:0].to(self.device, torch.float32)).cpu()
        return torch.cat(out)
