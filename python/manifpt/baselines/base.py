"""The one interface of every baseline, and the shared machinery behind it.

    b = make_baseline("durall20", **params)
    b.fit(images, labels, val_images, val_labels)   # images: float (N, 3, H, W) in [0, 1]
    b.predict(images) -> int64 labels (N,)
    b.features(images) -> float (N, F)              # handcrafted features or the penultimate layer
    b.probabilities(images) -> float (N, K)         # class probabilities (rows sum to 1)
    b.use_reals(reals)                              # before fit: a baseline that learns from real images
                                                    # (FSD) takes them here; the others ignore them

`SklearnBaseline`: handcrafted features + a scikit-learn classifier (standardised features).
`TorchBaseline`: a CNN trained with cross-entropy and Adam through the one training loop (train.train):
seeded, with early stopping on validation accuracy (the best epoch is kept), and with
`fit(..., checkpoint=PATH, resume=True)` an interrupted fit continues from its last epoch. Subclasses
give the input transform and the network (a backbones.Trunk: `.features(x)` penultimate, `.head`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..backbones import Trunk  # noqa: F401  (the network shape TorchBaseline trains; baselines import it from here)
from ..train import accuracy_of, train


def _check_images(images) -> torch.Tensor:
    x = torch.as_tensor(images)
    if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"baseline: images must be a float (N, 3, H, W) tensor in [0, 1], got {tuple(x.shape)} {x.dtype}")
    return x.float()


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma, as PIL's convert('L') that the baselines' code uses."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(dim=1)


class Baseline:
    name = "baseline"

    def fit(self, images, labels, val_images=None, val_labels=None, *, checkpoint=None, resume: bool = False):
        """Trains on images (N, 3, H, W) in [0, 1]. Baselines that train for epochs write `checkpoint`
        after each one and, with `resume`, continue from it; the others ignore both."""
        raise NotImplementedError

    def predict(self, images) -> np.ndarray:
        raise NotImplementedError

    def features(self, images) -> np.ndarray:
        raise NotImplementedError

    def use_reals(self, reals) -> Baseline:
        """Real images, given before fit(): only a baseline that models real images uses them."""
        return self

    def probabilities(self, images) -> np.ndarray:
        """(N, K) class probabilities, K the classes fit() saw."""
        raise NotImplementedError

    def confidence(self, images) -> np.ndarray:
        """Max class probability per image (higher = more like a known generator), for open-set use."""
        return self.probabilities(images).max(axis=1)


class SklearnBaseline(Baseline):
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.model = None

    def _classifier(self):
        raise NotImplementedError

    def fit(self, images, labels, val_images=None, val_labels=None, *, checkpoint=None, resume: bool = False):
        return self.fit_features(self.features(images), labels)

    def fit_features(self, features: np.ndarray, labels):
        """fit() on features already computed: they are a fixed function of the images, so a study that
        fits several seeds on one set of images computes them once."""
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(StandardScaler(), self._classifier())
        self.model.fit(features, np.asarray(labels))
        return self

    def predict(self, images) -> np.ndarray:
        return self.predict_features(self.features(images))

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call fit() first")
        return np.asarray(self.model.predict(features), dtype=np.int64)

    def probabilities(self, images) -> np.ndarray:
        return self.probabilities_features(self.features(images))

    def probabilities_features(self, f: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call fit() first")
        if hasattr(self.model, "predict_proba"):
            return self.model.predict_proba(f)
        d = self.model.decision_function(f)  # e.g. linear SVM: softmax of the margins
        d = np.column_stack([-d, d]) if d.ndim == 1 else d  # two classes: one margin, of class 1
        e = np.exp(d - d.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def confidence_features(self, f: np.ndarray) -> np.ndarray:
        return self.probabilities_features(f).max(axis=1)


class TorchBaseline(Baseline):
    def __init__(self, epochs: int = 20, batch_size: int = 32, lr: float = 1e-3, patience: int = 5, seed: int = 0,
                 device: str = "cpu", progress: bool = False):
        self.epochs, self.batch_size, self.lr, self.patience, self.seed = epochs, batch_size, lr, patience, seed
        self.device = torch.device(device)
        self.progress = progress
        self.net: nn.Module | None = None

    def transform(self, images: torch.Tensor, train: bool, gen: torch.Generator | None = None) -> torch.Tensor:
        return images

    def make_net(self, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def optimizer(self, params):
        return torch.optim.Adam(params, lr=self.lr)

    def _input(self, images: torch.Tensor, training: bool, gen) -> torch.Tensor:
        x = self.transform(images, training, gen).to(self.device)
        # oneDNN's CPU convolutions run faster on NHWC than NCHW (benchmarks/RESULTS.md)
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    def _batches(self, x, training, gen):
        for i in range(0, len(x), self.batch_size):
            yield self._input(x[i : i + self.batch_size], training, gen)

    def settings(self) -> dict:
        """What a resumed checkpoint must match: the name and every plain constructor value."""
        return {"baseline": self.name, **{k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                                          for k, v in vars(self).items() if k not in ("net", "progress") and not callable(v)}}

    def fit(self, images, labels, val_images=None, val_labels=None, *, checkpoint=None, resume: bool = False):
        x, y = _check_images(images), torch.as_tensor(labels, dtype=torch.long)
        if val_images is None:
            val_images, val_labels = x, y
        xv, yv = _check_images(val_images), torch.as_tensor(val_labels, dtype=torch.long)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        self.net = self.make_net(int(y.max()) + 1).to(self.device, memory_format=torch.channels_last)

        def batch_loss(idx, g):
            logits = self.net.head(self.net.features(self._input(x[idx], True, g)))
            return nn.functional.cross_entropy(logits, y[idx].to(self.device))

        train(self.net, self.optimizer(self.net.parameters()), len(x), batch_loss, score=accuracy_of(self.predict, xv, yv),
              epochs=self.epochs, batch_size=self.batch_size, patience=self.patience, generator=gen, checkpoint=checkpoint,
              resume=resume, settings={**self.settings(), "classes": int(y.max()) + 1, "n_train": len(x)},
              progress=f"fit {self.name}" if self.progress else None)
        return self

    @torch.inference_mode()
    def features(self, images) -> np.ndarray:
        if self.net is None:
            raise RuntimeError(f"{self.name}: call fit() first")
        self.net.eval()
        x = _check_images(images)
        return torch.cat([self.net.features(b).cpu() for b in self._batches(x, False, None)]).numpy()

    @torch.inference_mode()
    def predict(self, images) -> np.ndarray:
        feats = torch.from_numpy(self.features(images)).to(self.device)
        return self.net.head(feats).argmax(dim=1).cpu().numpy()

    @torch.inference_mode()
    def probabilities(self, images) -> np.ndarray:
        feats = torch.from_numpy(self.features(images)).to(self.device)
        return torch.softmax(self.net.head(feats), dim=1).cpu().numpy()
