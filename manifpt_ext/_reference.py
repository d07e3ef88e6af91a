"""Pure-torch float64 reference of manifpt::project: the oracle for tests and benchmarks.

Slow (chunked direct form) and memory-hungry on purpose: it evaluates sum((x - y)^2) in float64
for every pair, with no expansion, so there is no cancellation to reason about.
"""
from __future__ import annotations

import math

import torch

from .ops import Projection


def project_reference(fakes: torch.Tensor, reals: torch.Tensor, chunk_elems: int = 1 << 24) -> Projection:
    """Float64 reference: same contract as :func:`manifpt_ext.project` (ties to the lowest index)."""
    m, n = fakes.shape[0], reals.shape[0]
    d = math.prod(reals.shape[1:])
    x = fakes.reshape(m, d).to(torch.float64)
    y = reals.reshape(n, d).to(torch.float64)
    index = torch.empty(m, dtype=torch.long, device=fakes.device)
    dist = torch.empty(m, dtype=torch.float64, device=fakes.device)
    rows = max(1, chunk_elems // max(1, n * d))
    for i0 in range(0, m, rows):
        xb = x[i0 : i0 + rows]
        d2 = ((xb[:, None, :] - y[None, :, :]) ** 2).sum(-1)
        # torch.min returns the first index of the minimum: lowest index on ties.
        best, arg = d2.min(dim=1)
        index[i0 : i0 + rows] = arg
        dist[i0 : i0 + rows] = best
    flat_y = reals.reshape(n, d)
    acc = torch.float64 if fakes.dtype == torch.float64 else torch.float32
    artifact = (fakes.reshape(m, d).to(acc) - flat_y[index].to(acc)).to(fakes.dtype).reshape(fakes.shape)
    return Projection(artifact, index, dist.to(torch.float32))
