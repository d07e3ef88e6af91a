"""Fake (meta) kernel and autograd formula of manifpt::project.

register_fake lets torch.compile(fullgraph=True) and torch.export trace through the op;
register_autograd gives artifact = fakes - reals[index] its gradient: identity to fakes,
scatter-add (index_add) of the negated gradient to the chosen reals. The distance's gradient
(2 * artifact per fake) is included too; index is an integer output and carries none.
"""
from __future__ import annotations

import torch


@torch.library.register_fake("manifpt::project")
def _project_fake(fakes, reals, tile_m=0, tile_n=0):
    torch._check(reals.shape[0] > 0, lambda: "manifpt.project: reals is empty (N = 0)")
    m = fakes.shape[0]
    artifact = torch.empty(fakes.shape, dtype=fakes.dtype, device=fakes.device)
    index = fakes.new_empty((m,), dtype=torch.long)
    distance = fakes.new_empty((m,), dtype=torch.float32)
    return artifact, index, distance


def _setup_context(ctx, inputs, output):
    fakes, reals, _, _ = inputs
    artifact, index, _ = output
    ctx.save_for_backward(artifact, index)
    ctx.reals_shape = reals.shape
    ctx.reals_dtype = reals.dtype


def _backward(ctx, grad_artifact, grad_index, grad_distance):
    artifact, index = ctx.saved_tensors
    m = artifact.shape[0]
    g = None
    if grad_artifact is not None:
        g = grad_artifact.reshape(m, -1)
    if grad_distance is not None:
        gd = 2.0 * artifact.reshape(m, -1) * grad_distance.to(artifact.dtype)[:, None]
        g = gd if g is None else g + gd
    if g is None:
        return None, None, None, None
    grad_fakes = g.reshape(artifact.shape) if ctx.needs_input_grad[0] else None
    grad_reals = None
    if ctx.needs_input_grad[1]:
        n = ctx.reals_shape[0]
        grad_reals = g.new_zeros((n, g.shape[1])).index_add(0, index, -g).reshape(ctx.reals_shape)
    return grad_fakes, grad_reals, None, None


torch.library.register_autograd("manifpt::project", _backward, setup_context=_setup_context)

# The CUDA kernel under the emulation (tests): the same contract, so the same fake and gradient.
torch.library.register_fake("manifpt::_project_cuda_emulated")(_project_fake)
torch.library.register_autograd("manifpt::_project_cuda_emulated", _backward, setup_context=_setup_context)


@torch.library.register_fake("manifpt::row_sqdist")
def _row_sqdist_fake(a, b):
    return a.new_empty((a.shape[0],), dtype=torch.float64)


# The CUDA op with its precision, variant and split arguments (and its emulated twin): same contract.
@torch.library.register_fake("manifpt::project_precision")
def _project_precision_fake(fakes, reals, precision="exact", variant="auto", splits=0):
    return _project_fake(fakes, reals)


def _setup_context_precision(ctx, inputs, output):
    _setup_context(ctx, (*inputs[:2], 0, 0), output)


def _backward_precision(ctx, *grads):
    return (*_backward(ctx, *grads)[:2], None, None, None)


torch.library.register_autograd("manifpt::project_precision", _backward_precision, setup_context=_setup_context_precision)
torch.library.register_fake("manifpt::_project_precision_emulated")(_project_precision_fake)
torch.library.register_autograd(
    "manifpt::_project_precision_emulated", _backward_precision, setup_context=_setup_context_precision
)


@torch.library.register_fake("manifpt::freq_spectra")
def _freq_spectra_fake(images, mode="logmag"):
    b, c, h, w = images.shape
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    return images.new_empty((b, 2 * c if mode == "complex" else c, h, w), dtype=dtype)
