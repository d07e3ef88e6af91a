"""Marra et al. 2019, "Incremental learning for the detection and classification of GAN-generated
images": iCaRL (Rebuffi et al. 2017) over a CNN, learning one generator class at a time.

For each new class, in label order:
1. Train the feature extractor and a head grown by one output. The data are the new class's images
   plus the exemplar memory of the old classes. The loss is binary cross-entropy: one-hot targets for
   the new class, and for the old outputs the previous network's sigmoid outputs (distillation).
2. Select exemplars by herding in the L2-normalised feature space. The memory is `memory` images
   overall, split evenly over the classes seen.

Prediction is by the nearest mean of exemplars (iCaRL's classifier), in the normalised feature space.
The feature extractor is the authors' small ResNet (16/32/64 channels) at the images' own size. The
paper used XceptionNet; `memory` and `epochs` are parameters.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .base import Baseline, _check_images


class Marra19(Baseline):
    name = "marra19"

    def __init__(self, memory: int = 200, epochs: int = 10, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                 device: str = "cpu", progress: bool = False):
        self.progress = progress
        if memory < 1 or epochs < 1:
            raise ValueError(f"marra19: memory and epochs must be >= 1, got {memory}, {epochs}")
        self.memory, self.epochs, self.batch_size, self.lr, self.seed = memory, epochs, batch_size, lr, seed
        self.device = torch.device(device)
        self.extractor: nn.Module | None = None

    def _embed(self, net, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(net(x.to(self.device)), dim=1)

    @torch.inference_mode()
    def features(self, images) -> np.ndarray:
        if self.extractor is None:
            raise RuntimeError("marra19: call fit() first")
        self.extractor.eval()
        x = _check_images(images)
        return torch.cat([self._embed(self.extractor, x[i : i + 256]).cpu() for i in range(0, len(x), 256)]).numpy()

    def _herding(self, feats: torch.Tensor, m: int) -> list[int]:
        mean = feats.mean(0)
        chosen, acc = [], torch.zeros_like(mean)
        for k in range(1, min(m, len(feats)) + 1):
            scores = ((mean - (acc + feats) / k) ** 2).sum(1)
            if chosen:
                scores[chosen] = float("inf")
            i = int(scores.argmin())
            chosen.append(i)
            acc += feats[i]
        return chosen

    def fit(self, images, labels, val_images=None, val_labels=None):
        from ..attribute import SmallResNet

        x, y = _check_images(images), torch.as_tensor(labels, dtype=torch.long)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        body = SmallResNet(3, 2)
        self.extractor = body.features.to(self.device)
        head = None
        exemplars: dict[int, torch.Tensor] = {}
        classes = sorted(int(c) for c in y.unique())
        steps = enumerate(classes)
        if self.progress:
            from tqdm import tqdm

            steps = tqdm(steps, total=len(classes), desc="fit marra19", unit="class")
        for t, c in steps:
            old_net = copy.deepcopy(nn.Sequential(self.extractor, head)).eval() if t else None
            new_head = nn.Linear(64, t + 1).to(self.device)  # one more output; the old ones keep their weights
            if head is not None:
                with torch.no_grad():
                    new_head.weight[:t] = head.weight
                    new_head.bias[:t] = head.bias
            head = new_head
            data_x = torch.cat([x[y == c]] + [exemplars[k] for k in classes[:t]])
            data_y = torch.cat([torch.full((int((y == c).sum()),), t)] + [torch.full((len(exemplars[k]),), i)
                                                                          for i, k in enumerate(classes[:t])])
            opt = torch.optim.Adam(list(self.extractor.parameters()) + list(head.parameters()), lr=self.lr)
            for _ in range(self.epochs):
                self.extractor.train()
                order = torch.randperm(len(data_x), generator=gen)
                for i in range(0, len(order), self.batch_size):
                    idx = order[i : i + self.batch_size]
                    if len(idx) < 2:
                        continue
                    xb = data_x[idx].to(self.device)
                    logits = head(self.extractor(xb))
                    target = nn.functional.one_hot(data_y[idx], t + 1).float().to(self.device)
                    if old_net is not None:
                        with torch.no_grad():
                            target[:, :t] = torch.sigmoid(old_net(xb))
                    loss = nn.functional.binary_cross_entropy_with_logits(logits, target)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            per_class = max(1, self.memory // (t + 1))
            self.extractor.eval()
            with torch.no_grad():
                for k in classes[: t + 1]:
                    pool = x[y == k] if k not in exemplars else exemplars[k]
                    feats = self._embed(self.extractor, pool).cpu()
                    exemplars[k] = pool[self._herding(feats, per_class)] if k not in exemplars else pool[:per_class]
        self.classes = classes
        with torch.no_grad():
            self.means = torch.stack([nn.functional.normalize(self._embed(self.extractor, exemplars[k]).mean(0), dim=0)
                                      for k in classes]).cpu()
        return self

    def predict(self, images) -> np.ndarray:
        f = torch.from_numpy(self.features(images))
        nearest = torch.cdist(f, self.means).argmin(dim=1)
        return np.asarray(self.classes, dtype=np.int64)[nearest.numpy()]

    def confidence(self, images) -> np.ndarray:
        """Softmax over negative distances to the class means of exemplars, max per image."""
        d = torch.cdist(torch.from_numpy(self.features(images)), self.means)
        return torch.softmax(-d / 0.1, dim=1).max(dim=1).values.numpy()
