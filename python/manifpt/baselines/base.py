"""The one interface of every baseline, and the shared machinery behind it.

    b = make_baseline("durall20", **params)
    b.fit(images, labels, val_images, val_labels)   # images: float (N, 3, H, W) in [0, 1]
    b.predict(images) -> int64 labels (N,)
    b.features(images) -> float (N, F)              # handcrafted features or the penultimate layer

`SklearnBaseline`: handcrafted features + a scikit-learn classifier (standardised features).
`TorchBaseline`: a CNN trained with cross-entropy and Adam, seeded, with early stopping on validation
accuracy (the best epoch is kept); subclasses give the input transform and the network, which must
expose `.features(x)` (penultimate) and `.head`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


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

    def fit(self, images, labels, val_images=None, val_labels=None):
        raise NotImplementedError

    def predict(self, images) -> np.ndarray:
        raise NotImplementedError

    def features(self, images) -> np.ndarray:
        raise NotImplementedError

    def confidence(self, images) -> np.ndarray:
        """Max class probability per image (higher = more like a known generator), for open-set use."""
        raise NotImplementedError


class SklearnBaseline(Baseline):
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.model = None

    def _classifier(self):
        raise NotImplementedError

    def fit(self, images, labels, val_images=None, val_labels=None):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(StandardScaler(), self._classifier())
        self.model.fit(self.features(images), np.asarray(labels))
        return self

    def predict(self, images) -> np.ndarray:
        if self.model is None:
            raise RuntimeError(f"{self.name}: call fit() first")
        return np.asarray(self.model.predict(self.features(images)), dtype=np.int64)

    def confidence(self, images) -> np.ndarray:
        f = self.features(images)
        if hasattr(self.model, "predict_proba"):
            return self.model.predict_proba(f).max(axis=1)
        d = np.atleast_2d(self.model.decision_function(f))  # e.g. linear SVM: softmax of the margins
        d = np.column_stack([-d[0], d[0]]) if d.shape[0] == 1 and d.shape[1] == len(f) else d
        e = np.exp(d - d.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).max(axis=1)


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

    def _batches(self, x, train, gen):
        for i in range(0, len(x), self.batch_size):
            yield self.transform(x[i : i + self.batch_size], train, gen).to(self.device)

    def fit(self, images, labels, val_images=None, val_labels=None):
        x, y = _check_images(images), torch.as_tensor(labels, dtype=torch.long)
        if val_images is None:
            val_images, val_labels = x, y
        xv, yv = _check_images(val_images), torch.as_tensor(val_labels, dtype=torch.long)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        self.net = self.make_net(int(y.max()) + 1).to(self.device)
        opt = self.optimizer(self.net.parameters())
        best, best_epoch, best_state = -1.0, -1, None
        epochs = range(self.epochs)
        if self.progress:
            from tqdm import tqdm

            epochs = tqdm(epochs, desc=f"fit {self.name}", unit="epoch")
        for epoch in epochs:
            if best_epoch >= 0 and epoch - best_epoch > self.patience:
                break
            self.net.train()
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(order), self.batch_size):
                idx = order[i : i + self.batch_size]
                if len(idx) < 2:
                    continue
                logits = self.net.head(self.net.features(self.transform(x[idx], True, gen).to(self.device)))
                loss = nn.functional.cross_entropy(logits, y[idx].to(self.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            acc = float((torch.from_numpy(self.predict(xv)) == yv).float().mean())
            if self.progress:
                epochs.set_postfix(val_acc=f"{acc:.3f}")
            if acc > best:
                best, best_epoch = acc, epoch
                best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.net.load_state_dict(best_state)
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
    def confidence(self, images) -> np.ndarray:
        feats = torch.from_numpy(self.features(images)).to(self.device)
        return torch.softmax(self.net.head(feats), dim=1).max(dim=1).values.cpu().numpy()


class Trunk(nn.Module):
    """A feature extractor and a linear head, the shape TorchBaseline trains."""

    def __init__(self, features: nn.Module, dim: int, num_classes: int):
        super().__init__()
        self.features = features
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.head(self.features(x))
