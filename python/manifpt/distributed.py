"""Training under torchrun: the process group, and the few collectives the training loop needs.

`setup(device, timeout_s)` joins the group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK,
MASTER_ADDR/PORT in the environment): gloo for the CPU, NCCL for CUDA, one GPU per local rank. Without
torchrun (WORLD_SIZE unset or 1) it does nothing and training runs in one process.

A rank that dies closes its connections, and the others' next collective raises within about a second
(gloo) or, for a rank that hangs instead, after `timeout_s`; `guard` turns that into one line that
names the rank, so a job fails instead of hanging.
"""
from __future__ import annotations

import contextlib
import os
from datetime import timedelta

import torch
import torch.distributed as dist


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the running group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup(device: str, timeout_s: float = 600.0) -> tuple[str, bool]:
    """Joins torchrun's group if there is one; returns (this rank's device, whether we created the group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        return device, False
    if timeout_s <= 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {timeout_s}")
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=timedelta(seconds=timeout_s))
    return device, True


def teardown(created: bool) -> None:
    if created and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def guard(what: str):
    """A failed collective (a rank died, or the group timed out) as one line naming this rank."""
    try:
        yield
    except RuntimeError as e:
        text = str(e)
        lost = isinstance(e, getattr(dist, "DistError", ())) or any(
            w in text for w in ("Connection", "connection", "Gloo", "gloo", "NCCL", "Timed out", "timed out", "peer"))
        if rank_world()[1] == 1 or not lost:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeError(f"manifpt {what}: rank {rank_world()[0]} lost the process group (another rank failed or "
                           f"the --timeout passed): {first}") from e


def broadcast(obj, src: int = 0):
    """`obj` of rank `src` on every rank (a training state, a decision); no collective in one process."""
    if rank_world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks, in float64."""
    if rank_world()[1] == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def sync_module(model: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (BatchNorm's running statistics drift per rank)."""
    if rank_world()[1] == 1:
        return
    for t in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(t.data, 0)


def average_gradients(model: torch.nn.Module) -> None:
    """Mean of the gradients over ranks, in one flat all-reduce: DistributedDataParallel's reduction, for a
    model that trains without its wrapper (the baselines call their network directly)."""
    _, world = rank_world()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class _GlobalBatchNorm(torch.autograd.Function):
    """xhat = (x - mean) / sqrt(var + eps) with the global batch's mean and variance, in two collectives:
    forward, one all_gather of each rank's (count, mean, M2), combined in float64 as Chan et al. combine
    partial variances (two-pass accuracy, no cancellation); backward, one all_reduce of the two sums the
    input's gradient needs. Autograd through two all-reduces took four collectives per layer and step."""

    @staticmethod
    def forward(ctx, x, eps):
        dims, shape, c = [0, *range(2, x.dim())], [1, x.shape[1]] + [1] * (x.dim() - 2), x.shape[1]
        mean_local = x.mean(dims)
        m2_local = (x - mean_local.view(shape)).square().sum(dims)
        local = torch.cat([x.new_tensor([x.numel() // c], dtype=torch.float64), mean_local.double(), m2_local.double()])
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local)
        g = torch.stack(parts)
        counts, means, m2s = g[:, :1], g[:, 1:c + 1], g[:, c + 1:]
        n = counts.sum()
        mean = (counts * means).sum(0) / n
        var = (m2s + counts * (means - mean).square()).sum(0) / n
        invstd = torch.rsqrt(var + eps).to(x.dtype)
        xhat = (x - mean.to(x.dtype).view(shape)) * invstd.view(shape)
        ctx.save_for_backward(xhat, invstd)
        ctx.n = float(n)
        ctx.mark_non_differentiable(mean, var, n)
        return xhat, mean, var, n

    @staticmethod
    def backward(ctx, grad, _mean, _var, _n):
        xhat, invstd = ctx.saved_tensors
        dims, shape, c = [0, *range(2, grad.dim())], [1, grad.shape[1]] + [1] * (grad.dim() - 2), grad.shape[1]
        sums = torch.cat([grad.sum(dims), (grad * xhat).sum(dims)])
        dist.all_reduce(sums)  # the loss is the sum over ranks: every rank's output depends on every x
        mean_g, mean_gx = (sums[:c] / ctx.n).view(shape), (sums[c:] / ctx.n).view(shape)
        return invstd.view(shape) * (grad - mean_g - xhat * mean_gx), None


class CrossRankBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, over every rank: what one
    process sees with the whole batch. torch's SyncBatchNorm does this on GPUs only; this one runs on any
    backend (gloo included), two collectives per layer and step (_GlobalBatchNorm). The input's gradient
    sums over the ranks, so DDP's averaged gradients equal one process's. Outside training, or in one
    process, it is a plain BatchNorm (running statistics)."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"CrossRankBatchNorm: expected an input of 2 or more dimensions, got {input.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or rank_world()[1] == 1:
            return super().forward(x)
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        y, mean, var, n = _GlobalBatchNorm.apply(x, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.to(x.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_((var * (n / (n - 1))).to(x.dtype), alpha=m)  # unbiased, as BatchNorm
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def cross_rank_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Every BatchNorm of `model` replaced in place by a CrossRankBatchNorm that shares its parameters and
    buffers (the same tensors: an optimizer or a DDP wrapper built on the model stays valid). Returns model."""
    for name, child in list(model.named_children()):
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(child, CrossRankBatchNorm):
            new = CrossRankBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new.training = child.training
            for key in ("weight", "bias"):
                setattr(new, key, getattr(child, key))
            for key in ("running_mean", "running_var", "num_batches_tracked"):
                new._buffers[key] = child._buffers.get(key)
            setattr(model, name, new)
        else:
            cross_rank_batchnorm(child)
    return model
