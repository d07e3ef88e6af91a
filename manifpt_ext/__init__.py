"""manifpt_ext: the native ops of manifpt (exact fused nearest-real projection), as torch ops.

Importing this package loads ``manifpt_ext._C``, whose import registers ``torch.ops.manifpt.*``
for the CPU (and CUDA, when built with it). Use the Python wrappers below, not ``torch.ops``.
"""
import torch  # noqa: F401  (libtorch must be loaded before _C)

try:
    from . import _C  # noqa: F401  (runs the TORCH_LIBRARY registrations)
except ImportError as e:  # pragma: no cover - depends on how Python was started
    import os as _os

    raise ImportError(
        f"manifpt_ext._C (the compiled op) is not in {_os.path.dirname(__file__)}. If that is the source "
        "checkout, Python picked it up from the current folder instead of the installed package: run from "
        "another folder, or build with ./run (pip install --no-build-isolation .)."
    ) from e
from . import _meta  # noqa: F401  (register_fake + register_autograd)
from ._reference import project_reference
from . import distributed
from .ops import Projection, cuda_available, project, row_sqdist
from .freq import freq_embed
from .stream import project_stream

__all__ = ["Projection", "project", "project_stream", "project_reference", "row_sqdist", "cuda_available", "distributed", "freq_embed"]
