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
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..backbones import SmallResNet
from ..io import atomic_write
from ..train import read_checkpoint, settings_diff, train
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

    def settings(self) -> dict:
        return {"baseline": self.name, "memory": self.memory, "epochs": self.epochs, "batch_size": self.batch_size,
                "lr": self.lr, "seed": self.seed}

    def fit(self, images, labels, val_images=None, val_labels=None, *, checkpoint=None, resume: bool = False):
        """One class at a time through the training loop. With `checkpoint`, the state after each finished
        class (network, exemplars, generator) goes to CHECKPOINT.steps and the epochs of the class being
        learnt to CHECKPOINT; `resume` continues from both."""
        x, y = _check_images(images), torch.as_tensor(labels, dtype=torch.long)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        body = SmallResNet(3, 2)
        self.extractor = body.features.to(self.device)
        head = None
        exemplars: dict[int, torch.Tensor] = {}  # class -> positions in x of its exemplars
        classes = sorted(int(c) for c in y.unique())
        settings = {**self.settings(), "classes": classes, "n_train": len(x)}
        steps_file = Path(f"{checkpoint}.steps") if checkpoint is not None else None
        first = 0
        if resume and steps_file is not None and steps_file.is_file():
            done = torch.load(steps_file, map_location="cpu", weights_only=True)
            if done.get("settings") != settings:
                raise ValueError(f"--resume: {steps_file} was written with another configuration "
                                 f"({', '.join(settings_diff(done.get('settings') or {}, settings))} differ)")
            first = done["step"] + 1
            head = nn.Linear(64, first).to(self.device)
            nn.Sequential(self.extractor, head).load_state_dict(done["model"])
            exemplars = {int(k): v for k, v in done["exemplars"].items()}
            gen.set_state(done["generator"])
            torch.set_rng_state(done["torch_rng"])
        steps = range(first, len(classes))
        if self.progress:
            from tqdm import tqdm

            steps = tqdm(steps, total=len(classes), initial=first, desc="fit marra19", unit="class")
        for t in steps:
            c = classes[t]
            old_net = copy.deepcopy(nn.Sequential(self.extractor, head)).eval() if t else None
            new_head = nn.Linear(64, t + 1).to(self.device)  # one more output; the old ones keep their weights
            if head is not None:
                with torch.no_grad():
                    new_head.weight[:t] = head.weight
                    new_head.bias[:t] = head.bias
            head = new_head
            data_x = torch.cat([x[y == c]] + [x[exemplars[k]] for k in classes[:t]])
            data_y = torch.cat([torch.full((int((y == c).sum()),), t)] + [torch.full((len(exemplars[k]),), i)
                                                                          for i, k in enumerate(classes[:t])])
            net = nn.Sequential(self.extractor, head)

            def batch_loss(idx, g, t=t, old_net=old_net, data_x=data_x, data_y=data_y, head=head):
                xb = data_x[idx].to(self.device)
                logits = head(self.extractor(xb))
                target = nn.functional.one_hot(data_y[idx], t + 1).float().to(self.device)
                if old_net is not None:
                    with torch.no_grad():
                        target[:, :t] = torch.sigmoid(old_net(xb))
                return nn.functional.binary_cross_entropy_with_logits(logits, target)

            step_settings = {**settings, "step": t}
            resume_step = resume and checkpoint is not None and Path(checkpoint).is_file() and \
                read_checkpoint(checkpoint)["settings"] == step_settings
            train(net, torch.optim.Adam(net.parameters(), lr=self.lr), len(data_x), batch_loss, epochs=self.epochs,
                  batch_size=self.batch_size, generator=gen, checkpoint=checkpoint, resume=resume_step, settings=step_settings)
            per_class = max(1, self.memory // (t + 1))
            self.extractor.eval()
            with torch.no_grad():
                for k in classes[: t + 1]:
                    if k in exemplars:
                        exemplars[k] = exemplars[k][:per_class]
                    else:
                        pool = torch.nonzero(y == k).flatten()
                        feats = self._embed(self.extractor, x[pool]).cpu()
                        exemplars[k] = pool[self._herding(feats, per_class)]
            if steps_file is not None:
                state = {"settings": settings, "step": t, "model": net.state_dict(), "generator": gen.get_state(),
                         "torch_rng": torch.get_rng_state(), "exemplars": {str(k): v for k, v in exemplars.items()}}
                atomic_write(steps_file, lambda tmp: torch.save(state, tmp))
        self.classes = classes
        with torch.no_grad():
            self.means = torch.stack([nn.functional.normalize(self._embed(self.extractor, x[exemplars[k]]).mean(0), dim=0)
                                      for k in classes]).cpu()
        return self

    def predict(self, images) -> np.ndarray:
        f = torch.from_numpy(self.features(images))
        nearest = torch.cdist(f, self.means).argmin(dim=1)
        return np.asarray(self.classes, dtype=np.int64)[nearest.numpy()]

    def probabilities(self, images) -> np.ndarray:
        """Softmax over negative distances to the class means of exemplars (columns: classes 0..K-1)."""
        d = torch.cdist(torch.from_numpy(self.features(images)), self.means)
        p = torch.softmax(-d / 0.1, dim=1).numpy()
        out = np.zeros((len(p), max(self.classes) + 1), dtype=p.dtype)
        out[:, self.classes] = p
        return out
