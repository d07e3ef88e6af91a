"""The attributor: a classifier trained on artifacts to name the model that made an image.

Architectures (`arch`):
- Image-shaped artifacts (C, H, W), from the rgb and freq spaces:
  - `small` (default): the small ResNet of the authors' released script, 3 stages of basic blocks
    with 16/32/64 channels, global pooling and a K-way linear head. Meant for CPU runs.
  - `resnet50`: torchvision's ResNet50 with a new K-way head, as in the paper. Its first convolution
    takes C channels. `weights` may name an ImageNet state dict to fine-tune from, loaded with the
    same checks as the sl embedder.
- Vector artifacts (D,), from the sl and ssl spaces: an MLP head (D -> 512 -> K, ReLU, dropout 0.2).

Inputs are standardised per channel (per feature for vectors) with the mean and std of the training
artifacts (artifact_store.streamed_stats: float64, chunk by chunk, the same for a tensor and a file),
stored in the checkpoint. Artifacts are small residuals, whose scale differs by space.

Data: tensors in RAM, or artifact_store.Rows of a file on disk, read batch by batch through a DataLoader
(`workers` processes, pinned memory on CUDA) and never whole. Under torchrun the model is wrapped in
DistributedDataParallel (train.train shards each batch over the ranks).

Precision (`precision`): "auto" (default) is bf16 autocast on a CUDA GPU that supports bf16 and fp32
elsewhere; "bf16" asks for autocast (on the CPU too), "fp32" turns it off. Weights, optimizer state and
the loss stay float32 in every case.

Training:
- cross-entropy loss; AdamW (lr 1e-3, wd 1e-2) or SGD (lr 0.1, momentum 0.9, wd 1e-4, as the authors);
- seeded: initialisation and shuffling;
- early stopping once validation accuracy has not improved for `patience` epochs; the best epoch's
  weights are kept;
- the loop is train.train: a checkpoint after every epoch, written atomically, loadable with
  `torch.load(weights_only=True)`; `fit(..., resume=True)` continues where it stopped, bit for bit, and
  refuses a checkpoint of other settings (the configuration plus the caller's `settings`, e.g. the
  space and data the artifacts came from), naming the keys that differ.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from . import backbones, heap
from .artifact_store import Rows, chunk_rows, loader, streamed_stats
from .distributed import rank_world
from .io import atomic_write
from .train import accuracy_of, train

CHECKPOINT_VERSION = 2
# Rows per forward when scoring: the activations, not the inputs, set the memory of a big chunk.
SCORE_ROWS = 256


class _Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(len(x), *self.shape)


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int, weights: str | None = None) -> nn.Module:
    """The network for artifacts of `input_shape`, chosen by its shape: a backbones.Trunk of `arch` for images
    (C, H, W), or (H, W) as one channel; an MLP (D -> 512 -> K, ReLU, dropout 0.2) for vectors (D,), or for
    any other shape, flattened."""
    if not input_shape or any(s < 1 for s in input_shape):
        raise ValueError(f"Attributor: artifacts must have a non-empty shape per sample, got {input_shape}")
    if arch not in ("small", "resnet50"):
        raise ValueError(f"Attributor: unknown arch {arch!r}: choose 'small' or 'resnet50'")
    if len(input_shape) in (2, 3):
        image = input_shape if len(input_shape) == 3 else (1, *input_shape)
        trunk = backbones.build(arch, image[0], num_classes, weights)
        return trunk if len(input_shape) == 3 else nn.Sequential(_Reshape(image), trunk)
    d = 1
    for s in input_shape:
        d *= s
    mlp = nn.Sequential(nn.Linear(d, 512), nn.ReLU(inplace=True), nn.Dropout(0.2), nn.Linear(512, num_classes))
    return mlp if len(input_shape) == 1 else nn.Sequential(_Reshape((d,)), mlp)


class Attributor:
    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        *,
        arch: str = "small",
        optimizer: str = "adamw",
        lr: float | None = None,
        weight_decay: float | None = None,
        epochs: int = 30,
        batch_size: int = 64,
        patience: int = 5,
        seed: int = 0,
        device: str = "cpu",
        weights: str | None = None,
        class_names: list[str] | None = None,
        precision: str = "auto",
    ):
        if num_classes < 2:
            raise ValueError(f"Attributor: need at least 2 classes, got {num_classes}")
        if optimizer not in ("adamw", "sgd"):
            raise ValueError(f"Attributor: optimizer must be 'adamw' or 'sgd', got {optimizer!r}")
        if epochs < 1 or batch_size < 1 or patience < 1:
            raise ValueError(f"Attributor: epochs, batch_size and patience must be >= 1, got {epochs}, {batch_size}, {patience}")
        if precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"Attributor: precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
        self.config = {
            "num_classes": int(num_classes), "input_shape": [int(s) for s in input_shape], "arch": arch,
            "optimizer": optimizer, "lr": float(lr if lr is not None else (1e-3 if optimizer == "adamw" else 0.1)),
            "weight_decay": float(weight_decay if weight_decay is not None else (1e-2 if optimizer == "adamw" else 1e-4)),
            "epochs": int(epochs), "batch_size": int(batch_size), "patience": int(patience), "seed": int(seed),
            "class_names": list(class_names) if class_names else [str(i) for i in range(num_classes)],
            "precision": precision,
        }
        self.device = torch.device(device)
        self.amp = precision == "bf16" or (precision == "auto" and self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        torch.manual_seed(seed)
        self.model = build_model(arch, tuple(input_shape), num_classes, weights).to(self.device)
        # oneDNN's CPU convolutions run 20% faster on NHWC than NCHW at these sizes (benchmarks/RESULTS.md)
        self._channels_last = len(input_shape) == 3
        if self._channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.mean = torch.zeros(1)
        self.std = torch.ones(1)
        self.history: list[dict] = []
        self.temperature = 1.0
        self.open_set: dict | None = None

    # -- normalisation -------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def _chunk(self, rows: Rows, memory_budget: int | None = None) -> int:
        row_bytes = 4 * max(1, int(torch.tensor(rows.sample_shape).prod()))
        return chunk_rows(row_bytes, memory_budget, default=max(1024, self.config["batch_size"]))

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x.float() - self.mean.to(x.device)) / self.std.to(x.device)).to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

    def _optimizer(self):
        c = self.config
        if c["optimizer"] == "sgd":
            return torch.optim.SGD(self.model.parameters(), lr=c["lr"], momentum=0.9, weight_decay=c["weight_decay"])
        return torch.optim.AdamW(self.model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])

    def _check(self, x: torch.Tensor, y: torch.Tensor | None = None, name: str = "x") -> None:
        if tuple(x.shape[1:]) != tuple(self.config["input_shape"]):
            raise ValueError(f"Attributor: {name} must be (N, {', '.join(map(str, self.config['input_shape']))}), got {tuple(x.shape)}")
        if y is not None:
            if y.shape != (x.shape[0],):
                raise ValueError(f"Attributor: labels for {name} must be ({x.shape[0]},), got {tuple(y.shape)}")
            if len(y) and (y.min() < 0 or y.max() >= self.config["num_classes"]):
                raise ValueError(f"Attributor: labels must lie in [0, {self.config['num_classes']}), got {int(y.min())}..{int(y.max())}")

    # -- training ------------------------------------------------------------------------------
    def fit(self, x_train, y_train=None, x_val=None, y_val=None, *, checkpoint: str | Path | None = None,
            resume: bool = False, progress: bool = True, settings: dict | None = None, workers: int = 0,
            memory_budget: int | None = None) -> list[dict]:
        """Trains with early stopping on validation accuracy; returns the per-epoch history. x_train/x_val
        are tensors (with y_train/y_val) or Rows (their labels inside). `settings` (plain values) join the
        configuration that a resumed checkpoint must match."""
        train_rows, val_rows = _as_rows(x_train, y_train), _as_rows(x_val, y_val)
        for rows, name in ((train_rows, "x_train"), (val_rows, "x_val")):
            self._check_rows(rows, name)
        if len(train_rows) == 0 or len(val_rows) == 0:
            raise ValueError("Attributor.fit: the training and validation sets must not be empty")
        c = self.config
        chunk = self._chunk(train_rows, memory_budget)
        self.mean, self.std = streamed_stats(train_rows.chunks(chunk))
        loss_fn = nn.CrossEntropyLoss()
        net = self.model
        if rank_world()[1] > 1:
            net = nn.parallel.DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

        def batch_loss(idx, gen, data=None):
            x, y = data if data is not None else (train_rows.x(idx), train_rows.y(idx))
            with self._autocast():
                return loss_fn(net(self._norm(x)), y.to(self.device, non_blocking=True))

        fetch = None
        if train_rows.on_disk:
            pin = self.device.type == "cuda"
            fetch = lambda batches: loader(train_rows, batches, workers=workers, pin_memory=pin)  # noqa: E731

        score = accuracy_of(lambda rows: self.predict(rows, batch_size=min(chunk, SCORE_ROWS))[0], val_rows, val_rows.y())

        self.history, extra = train(
            net, self._optimizer(), len(train_rows), batch_loss, score=score, epochs=c["epochs"],
            batch_size=c["batch_size"], patience=c["patience"], seed=c["seed"], checkpoint=checkpoint, resume=resume,
            settings={**c, "amp": self.amp, **(settings or {})}, extra={"mean": self.mean, "std": self.std},
            progress="fit" if progress else None, fetch=fetch)
        self.mean, self.std = extra["mean"], extra["std"]
        return self.history

    def _check_rows(self, rows: Rows, name: str) -> None:
        if rows.sample_shape != tuple(self.config["input_shape"]):
            raise ValueError(f"Attributor: {name} must be (N, {', '.join(map(str, self.config['input_shape']))}), got "
                             f"(N, {', '.join(map(str, rows.sample_shape))})")
        if rows.labels is None:
            raise ValueError(f"Attributor: {name} needs labels")
        y = rows.y()
        if len(y) and (y.min() < 0 or y.max() >= self.config["num_classes"]):
            raise ValueError(f"Attributor: labels must lie in [0, {self.config['num_classes']}), got {int(y.min())}..{int(y.max())}")

    @torch.inference_mode()
    def logits(self, x, batch_size: int = 256) -> torch.Tensor:
        """Logits of a tensor, or of Rows (read chunk by chunk)."""
        if isinstance(x, Rows):
            if x.sample_shape != tuple(self.config["input_shape"]):
                self._check(torch.empty(0, *x.sample_shape))
            chunks = x.chunks(batch_size)
        else:
            x = torch.as_tensor(x)
            self._check(x)
            chunks = (x[i : i + batch_size] for i in range(0, len(x), batch_size))
        self.model.eval()
        heap.trim()  # a scoring pass after training steps would land on top of their fragmented heap (heap.py)
        out = []
        for part in chunks:
            with self._autocast():
                out.append(self.model(self._norm(part)).float().cpu())
        return torch.cat(out) if out else torch.empty(0, self.config["num_classes"])

    def predict(self, x, batch_size: int = 256, open_set: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels (N,) and class probabilities (N, K), softened by the calibrated temperature. With
        open_set=True, a label is -1 ("unknown") where the open-set score is below the threshold
        chosen by fit_open_set."""
        z = self.logits(x, batch_size)
        p = torch.softmax(z / self.temperature, dim=1)
        labels = p.argmax(dim=1)
        if open_set:
            if self.open_set is None:
                raise RuntimeError("Attributor.predict(open_set=True): call fit_open_set() first")
            labels = torch.where(self.open_set_scores(x) < self.open_set["threshold"], torch.full_like(labels, -1), labels)
        return labels, p

    # -- calibration and open set --------------------------------------------------------------
    def calibrate(self, x_val, y_val) -> dict:
        """Temperature scaling (Guo et al. 2017): the T > 0 that minimises the NLL of softmax(z / T)
        on validation data. Returns the expected calibration error before and after, on that data.

        Why not a generic optimiser: as a function of b = 1 / T the NLL, mean(logsumexp(b z) - b z_y), is
        convex, and its derivative mean(E_softmax(b z)[z] - z_y) increases with b. Bisection on that
        derivative in float64 finds the minimum to machine precision on any CPU, where LBFGS in float32
        stopped wherever the float order left its gradient below the tolerance (0.1% apart between two
        code paths of one machine)."""
        from . import metrics

        z, y = self.logits(x_val).double(), torch.as_tensor(y_val)
        z_y = z.gather(1, y.view(-1, 1)).squeeze(1)

        def slope(b: float) -> float:  # d NLL / d b
            return float((torch.softmax(b * z, 1) * z).sum(1).sub(z_y).mean())

        lo, hi = -12.0, 12.0  # log b: T from e^-12 to e^12, the ends mean "as sharp / as flat as it goes"
        for _ in range(100):  # 2^-100 of the bracket: far below float64's resolution of log b
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if slope(math.exp(mid)) < 0 else (lo, mid)
        self.temperature = math.exp(-(lo + hi) / 2)
        before = metrics.expected_calibration_error(torch.softmax(z, 1).numpy(), y.numpy())
        after = metrics.expected_calibration_error(torch.softmax(z / self.temperature, 1).numpy(), y.numpy())
        return {"temperature": self.temperature, "ece_before": before, "ece_after": after}

    def fit_open_set(self, x_val, method: str = "energy", keep: float = 0.95, x_train=None, y_train=None) -> float:
        """Chooses the open-set threshold: the score below which only 1 - `keep` of the validation
        images (all from known generators) fall.

        method:
        - "msp": max softmax probability;
        - "energy": logsumexp of the logits;
        - "fingerprint": distance to per-class fingerprint statistics in the artifact space. It needs
          x_train, y_train: their standardised artifacts are reduced by PCA (at most 64 components),
          and each class gets a mean with a shared covariance. The score is minus the smallest
          Mahalanobis distance to a class mean (Lee et al. 2018, on artifacts instead of features)."""
        if not 0 < keep <= 1:
            raise ValueError(f"keep must be in (0, 1], got {keep}")
        self.open_set = {"method": method, "keep": keep}
        if method == "fingerprint":
            if x_train is None or y_train is None:
                raise ValueError("fit_open_set(method='fingerprint') needs the training artifacts and labels")
            self.open_set.update(_fingerprint_stats(self._flat(x_train), torch.as_tensor(y_train), self.config["num_classes"]))
        scores = self.open_set_scores(x_val)
        self.open_set["threshold"] = float(torch.quantile(scores.double(), 1 - keep))
        return self.open_set["threshold"]

    def _flat(self, x) -> torch.Tensor:
        x = torch.as_tensor(x)
        self._check(x)
        return ((x.float() - self.mean) / self.std).reshape(len(x), -1)

    def open_set_scores(self, x) -> torch.Tensor:
        """The open-set score of each input under the fitted method (higher = more like a known generator)."""
        if self.open_set is None:
            raise RuntimeError("Attributor: call fit_open_set() first")
        if self.open_set["method"] == "fingerprint":
            if isinstance(x, Rows):  # chunk by chunk: the scores are per row
                parts = [self.open_set_scores(part) for part in x.chunks(self._chunk(x))]
                return torch.cat(parts) if parts else torch.empty(0)
            st = self.open_set
            z = (self._flat(x) - st["center"]) @ st["components"].T
            d = z[:, None, :] - st["class_means"][None]
            maha = torch.einsum("nkd,de,nke->nk", d, st["precision"], d)
            return -maha.min(dim=1).values
        return open_set_score(self.logits(x), self.open_set["method"], self.temperature)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict | None = None) -> None:
        """The trained model (its best weights) for predict/evaluate; `extra` holds plain values
        (e.g. the space and data it was trained on)."""
        state = {"version": CHECKPOINT_VERSION, "config": self.config, "model": self.model.state_dict(),
                 "mean": self.mean, "std": self.std, "history": self.history, "extra": extra or {},
                 "temperature": self.temperature, "open_set": self.open_set}
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> tuple["Attributor", dict]:
        state = load_checkpoint(path)
        c = state["config"]
        att = cls(c["num_classes"], tuple(c["input_shape"]), arch=c["arch"], optimizer=c["optimizer"], lr=c["lr"],
                  weight_decay=c["weight_decay"], epochs=c["epochs"], batch_size=c["batch_size"], patience=c["patience"],
                  seed=c["seed"], device=device, class_names=c["class_names"], precision=c.get("precision", "fp32"))
        att.model.load_state_dict(state["model"])
        att.mean, att.std, att.history = state["mean"], state["std"], state["history"]
        att.temperature, att.open_set = float(state.get("temperature", 1.0)), state.get("open_set")
        return att, state.get("extra", {})


def _as_rows(x, y) -> Rows:
    if isinstance(x, Rows):
        return x
    if x is None:
        raise ValueError("Attributor.fit: give the training and validation artifacts")
    x = torch.as_tensor(x)
    y = None if y is None else torch.as_tensor(y)
    if y is not None and y.shape != (x.shape[0],):
        raise ValueError(f"Attributor: labels must be ({x.shape[0]},), got {tuple(y.shape)}")
    return Rows(x, y)


def _fingerprint_stats(x: torch.Tensor, y: torch.Tensor, k: int, max_dims: int = 64) -> dict:
    """PCA basis of the training artifacts, class means in it and the shared precision matrix (the
    covariance pooled over classes, shrunk by 1e-3 of its mean variance so it stays invertible)."""
    x = x.double()
    center = x.mean(0)
    dims = max(1, min(max_dims, x.shape[1], x.shape[0] - k))
    _, _, v = torch.linalg.svd(x - center, full_matrices=False)
    comps = v[:dims]
    z = (x - center) @ comps.T
    means = torch.stack([z[y == c].mean(0) if (y == c).any() else torch.zeros(dims, dtype=z.dtype) for c in range(k)])
    resid = z - means[y]
    cov = resid.T @ resid / max(1, len(z) - k)
    cov += torch.eye(dims, dtype=cov.dtype) * 1e-3 * cov.diagonal().mean().clamp_min(1e-12)
    return {"center": center.float(), "components": comps.float(), "class_means": means.float(),
            "precision": torch.linalg.inv(cov).float()}


def open_set_score(logits: torch.Tensor, method: str, temperature: float = 1.0) -> torch.Tensor:
    """Higher = more like the known generators. msp: max softmax probability (Hendrycks & Gimpel 2017);
    energy: T * logsumexp(z / T), the negative free energy (Liu et al. 2020)."""
    z = logits / temperature
    if method == "msp":
        return torch.softmax(z, dim=1).max(dim=1).values
    if method == "energy":
        return temperature * torch.logsumexp(z, dim=1)
    raise ValueError(f"open-set method must be 'msp', 'energy' or 'fingerprint', got {method!r}")


def load_checkpoint(path: str | Path) -> dict:
    """A model file written by Attributor.save, read without unpickling arbitrary objects."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"model file {path} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, corrupt or foreign: say which file and why
        raise ValueError(f"cannot read model file {path} (truncated or not a manifpt checkpoint): {type(e).__name__}: {e}") from None
    if isinstance(state, dict) and "format" in state and "optimizer" in state:
        raise ValueError(f"{path} is a training checkpoint (for --resume), not a trained model: pass the model.pt "
                         "that `manifpt fit` wrote next to it")
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION or "config" not in state:
        raise ValueError(f"{path} is not a manifpt attributor checkpoint (version {CHECKPOINT_VERSION})")
    return state
