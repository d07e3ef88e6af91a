"""manifpt_ext: the native ops of manifpt (exact fused nearest-real projection), as torch ops.

Importing this package loads ``manifpt_ext._C``, whose import registers ``torch.ops.manifpt.*``
for the CPU (and CUDA, when built with it). Use the Python wrappers below, not ``torch.ops``.
"""
import torch  # noqa: F401  (libtorch must be loaded before _C)


def _has_c(folder):
    import importlib.machinery
    import os

    return any(f.startswith("_C.") and f.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)) for f in os.listdir(folder))


def _find_installed_c():
    """The folder of an installed manifpt_ext that holds _C, when this one (a source checkout on
    sys.path, e.g. the repository root as the current folder) has none: the compiled module lives in
    site-packages after `./run` or `pip install .`, and the source folder shadows it."""
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        candidate = os.path.join(os.path.abspath(entry or os.getcwd()), "manifpt_ext")
        if candidate == here or not os.path.isdir(candidate):
            continue
        if _has_c(candidate):
            return candidate
    return None


try:
    from . import _C  # noqa: F401  (runs the TORCH_LIBRARY registrations)
except ImportError as _e:
    if _has_c(__path__[0]):  # it is here but does not load (built against another torch?): say that
        raise ImportError(f"manifpt_ext._C in {__path__[0]} does not load: {_e}. Rebuild it with ./run "
                          "(pip install . builds against the torch of the environment it installs into)") from _e
    _installed = _find_installed_c()
    if _installed is None:
        raise ImportError(
            f"manifpt_ext._C (the compiled op) is not in {__path__[0]} nor in an installed manifpt_ext: build and "
            "install it with ./run, or pip install . into an environment that has torch"
        ) from _e
    # Python modules from here, the compiled one from the installed package (searched after this folder).
    __path__.append(_installed)
    from . import _C  # noqa: F401
if getattr(_C, "torch_version", torch.__version__) != torch.__version__:
    raise ImportError(f"manifpt_ext._C was compiled against torch {_C.torch_version} but runs with torch {torch.__version__}: "
                      "rebuild it (./run, or pip install . in this environment)")
from . import _meta  # noqa: F401  (register_fake + register_autograd)
from ._reference import project_reference
from . import distributed
from .ops import Projection, cpu_direct_rows, cpu_info, cpu_paths, cuda_available, project, project_freq, row_sqdist
from .freq import freq_embed
from .stream import project_stream

__all__ = ["Projection", "project", "project_freq", "project_stream", "project_reference", "row_sqdist", "cpu_info",
           "cpu_direct_rows", "cpu_paths", "cuda_available", "distributed", "freq_embed"]
