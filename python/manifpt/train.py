"""The one training loop: the Attributor, every torch baseline and ssl-pretrain train through `train`.

    history = train(model, optimizer, n, batch_loss, score=val_accuracy, epochs=30, batch_size=64,
                    patience=5, seed=0, checkpoint="ckpt.pt", resume=True, settings={...})

What it guarantees:
- **seeded**: the shuffling comes from one torch.Generator (seeded with `seed`, or passed in to be shared
  across several calls, as Marra19's incremental steps do); `batch_loss(idx, generator)` draws its
  augmentations from the same generator, so the whole run is a function of the seed;
- **early stopping**: once `score()` (higher is better, e.g. validation accuracy) has not improved for
  `patience` epochs; the best epoch's weights are loaded at the end. Without `score`, every epoch is
  the best so far (the last one is kept);
- **atomic checkpoints** after every epoch: model, optimizer, generator, torch's global RNG (dropout),
  best state, history and `extra` (a dict of tensors and plain values the caller needs back), written
  to a temporary file and renamed, so a kill never leaves a half file. Only tensors and plain values:
  it loads with `torch.load(weights_only=True)`;
- **bit-exact resume**: with `resume=True` and a checkpoint of the same `settings`, training continues
  after its last epoch and ends with the weights an uninterrupted run would have. A checkpoint of other
  settings is refused, naming the keys that differ;
- **data parallel under torchrun** (a process group is initialised, manifpt.distributed.setup): every rank
  draws the same permutation from the same seed and takes every K-th sample of each batch, as
  DistributedSampler does, so `batch_size` is the global batch and the learning rate needs no scaling.
  BatchNorm layers become CrossRankBatchNorm: their statistics are the global batch's, so a step on K
  ranks computes what one process computes on the whole batch, up to float summation order.
  A model wrapped in DistributedDataParallel has its gradients averaged by DDP; any other model (the
  torch baselines, which train their network directly) by one flat all-reduce after backward. A score
  from `accuracy_of` is sharded (each rank scores every K-th validation sample); rank 0's score decides
  early stopping on every rank; rank 0 alone reads and writes the checkpoint, and its
  state is broadcast on resume, so the other ranks need not see the file. A batch smaller than the world
  size is skipped (a rank without samples would leave the others waiting in the all-reduce);
- `fetch`: with `fetch(batches) -> iterable of data` (e.g. a DataLoader over a file on disk, prefetching
  with workers), batch_loss is called as batch_loss(idx, generator, data) with the data of `idx`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import distributed as D
from .io import atomic_write

CHECKPOINT_FORMAT = "manifpt-train-v1"


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by `train`, read without unpickling arbitrary objects."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, corrupt or foreign: say which file and why
        raise ValueError(f"cannot read checkpoint {path} (truncated or not a manifpt checkpoint): {type(e).__name__}: {e}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a manifpt training checkpoint ({CHECKPOINT_FORMAT})")
    return state


def settings_diff(old: dict, new: dict) -> list[str]:
    """The keys whose values differ between two settings dicts (a key missing on one side differs)."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    num_samples: int,
    batch_loss: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    *,
    score: Callable[[], float] | None = None,
    epochs: int,
    batch_size: int,
    patience: int | None = None,
    seed: int = 0,
    generator: torch.Generator | None = None,
    min_batch: int = 2,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    settings: dict | None = None,
    extra: dict | None = None,
    progress: str | None = None,
    fetch: Callable[[list[torch.Tensor]], Any] | None = None,
) -> tuple[list[dict], dict]:
    """Trains `model` for up to `epochs` epochs over `num_samples` samples in shuffled batches.

    batch_loss(idx, generator) -> scalar loss of the samples `idx` (a LongTensor of positions).
    Batches smaller than `min_batch` are skipped (BatchNorm cannot train on one sample; Barlow Twins
    standardises over the batch) unless the whole set is that small. Returns (history, extra): one
    {"epoch", "train_loss", "val_acc"} per epoch run, and `extra` as it stands (from the checkpoint on resume).
    """
    settings = dict(settings or {})
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    start, best, best_epoch, best_state, history = 0, float("-inf"), -1, None, []
    extra = dict(extra or {})
    rank, world = D.rank_world()
    ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    inner = model.module if ddp else model
    if world > 1:
        D.cross_rank_batchnorm(inner)  # BatchNorm over the global batch, as one process computes it
    if world > 1 and not ddp:
        D.sync_module(inner)  # one starting point on every rank (DDP's constructor does the same)
    state, error = None, None
    if resume and checkpoint is not None and rank == 0 and Path(checkpoint).is_file():
        try:
            state = read_checkpoint(checkpoint)
            diff = settings_diff(state["settings"], settings)
            if diff:
                error = (f"--resume: {checkpoint} was written with another configuration ({', '.join(diff)} differ): "
                         "use another --out, or leave out --resume to start again")
        except ValueError as e:
            error = str(e)
    if resume and world > 1:
        with D.guard("train"):
            state, error = D.broadcast((state, error))
    if error:
        raise ValueError(error)
    if state is not None:
        inner.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start, best, best_epoch = state["epoch"] + 1, state["best_score"], state["best_epoch"]
        best_state, history, extra = state["best_model"], state["history"], state["extra"]
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=epochs, initial=start, desc=progress + (f" ({world} ranks)" if world > 1 else ""), unit="epoch")
    try:  # the bar is closed before an exception (Ctrl-C) propagates, so the caller's message comes last
        with D.guard("train"):
            for epoch in range(start, epochs):
                if patience is not None and best_epoch >= 0 and epoch - best_epoch > patience:
                    break
                model.train()
                order = torch.randperm(num_samples, generator=gen)
                batches = []
                for i in range(0, num_samples, batch_size):
                    idx = order[i : i + batch_size]
                    if len(idx) < max(min_batch, world) and num_samples >= min_batch:
                        continue
                    batches.append(idx[rank::world] if world > 1 else idx)
                total, n = 0.0, 0
                for idx, data in zip(batches, fetch(batches) if fetch is not None else batches):
                    loss = batch_loss(idx, gen, data) if fetch is not None else batch_loss(idx, gen)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if world > 1 and not ddp:
                        D.average_gradients(inner)
                    optimizer.step()
                    total += float(loss.detach()) * len(idx)
                    n += len(idx)
                if world > 1:
                    total, n = D.all_sum([total, n])
                    if not ddp:
                        D.sync_module(inner)  # BatchNorm statistics: rank 0's, as DDP's broadcast_buffers keeps them
                value = score() if score is not None else None
                value = D.broadcast(value) if world > 1 else value  # one early-stopping decision on every rank
                history.append({"epoch": epoch, "train_loss": total / max(n, 1), "val_acc": value})
                if value is None or value > best:
                    best = best if value is None else value
                    best_epoch = epoch
                    best_state = {k: v.detach().clone() for k, v in inner.state_dict().items()}
                if checkpoint is not None and rank == 0:
                    ckpt = {"format": CHECKPOINT_FORMAT, "settings": settings, "model": inner.state_dict(),
                            "optimizer": optimizer.state_dict(), "generator": gen.get_state(),
                            "torch_rng": torch.get_rng_state(), "epoch": epoch, "best_score": best,
                            "best_epoch": best_epoch, "best_model": best_state, "history": history, "extra": extra}
                    atomic_write(checkpoint, lambda tmp: torch.save(ckpt, tmp))
                if bar is not None:
                    bar.set_postfix(loss=f"{total / max(n, 1):.3f}", **({} if value is None else {"val_acc": f"{value:.3f}"}))
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if best_state is not None:
        inner.load_state_dict(best_state)
    return history, extra


def accuracy_of(predict: Callable[[Any], Any], x, y) -> Callable[[], float]:
    """score() for `train`: the accuracy of predict(x) (labels) against y. x is a tensor or anything with
    `subset(positions)` (artifact_store.Rows). Under a process group each rank predicts every K-th sample
    and the correct counts are summed: validation costs 1/K per rank, and every rank gets the same value
    (the model is the same on every rank)."""
    y = torch.as_tensor(y)

    def score() -> float:
        rank, world = D.rank_world()
        if world == 1:
            return float((torch.as_tensor(predict(x)) == y).float().mean())
        pick = torch.arange(rank, len(y), world)
        part = x.subset(pick) if hasattr(x, "subset") else x[pick]
        correct = int((torch.as_tensor(predict(part)) == y[pick]).sum()) if len(pick) else 0
        return D.all_sum([correct])[0] / max(len(y), 1)

    return score
