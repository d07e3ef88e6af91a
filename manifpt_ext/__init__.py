"""manifpt_ext: the native ops of manifpt (exact fused nearest-real projection), as torch ops.

Importing this package loads ``manifpt_ext._C``, whose import registers ``torch.ops.manifpt.*``
for the CPU (and CUDA, when built with it). Use the Python wrappers below, not ``torch.ops``.
"""
import torch  # noqa: F401  (libtorch must be loaded before _C)

from . import _C  # noqa: F401  (runs the TORCH_LIBRARY registrations)
from . import _meta  # noqa: F401  (register_fake + register_autograd)
from ._reference import project_reference
from .ops import Projection, cuda_available, project

__all__ = ["Projection", "project", "project_reference", "cuda_available"]
