"""What the tests build: tensor pairs with a known answer, toy artifacts, small image folders (no data files in
the repo). Imported by the test files as `from helpers import ...`; fixtures live in conftest.py."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import manifpt_ext

requires_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and manifpt_ext.cuda_available()),
    reason="needs a CUDA device and a build with the CUDA kernels",
)


def make_pair(m, n, shape, dtype=torch.float32, device="cpu", seed=0, offset=0.0, noise=1.0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(shape, generator=g) * offset
    x = base + noise * torch.randn((m, *shape), generator=g)
    y = base + noise * torch.randn((n, *shape), generator=g)
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)


def assert_matches_reference(p, fakes, reals):
    r = manifpt_ext.project_reference(fakes, reals)
    assert p.index.dtype == torch.long and p.distance.dtype == torch.float32
    assert p.artifact.shape == fakes.shape and p.artifact.dtype == fakes.dtype
    torch.testing.assert_close(p.index.cpu(), r.index.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(p.artifact.cpu(), r.artifact.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(p.distance.cpu(), r.distance.cpu(), rtol=1e-5, atol=1e-6)


def toy_artifacts(n=60, shape=(3, 8, 8), k=3, seed=0):
    """n artifacts of k classes: a fixed pattern per class (scale 0.05) plus per-seed noise (0.02)."""
    y = torch.arange(n) % k
    pattern = torch.randn(k, *shape, generator=torch.Generator().manual_seed(1234))  # the classes: fixed
    g = torch.Generator().manual_seed(seed)  # the samples: per seed
    x = 0.05 * pattern[y] + 0.02 * torch.randn(n, *shape, generator=g)
    return x, y


def save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def make_gm_folder(root: Path, n_real=12, n_model=6, size=(20, 24), seed=0) -> Path:
    """ROOT/real + ROOT/model_a + ROOT/model_b, with a JPEG, an RGBA and a grayscale image among them."""
    g = np.random.default_rng(seed)
    h, w = size
    for i in range(n_real):
        save(root / "real" / f"r{i:03d}.png", g.integers(0, 256, (h, w, 3), dtype=np.uint8))
    for model, shift in (("model_a", 40), ("model_b", -40)):
        for i in range(n_model):
            img = np.clip(g.integers(0, 256, (h, w, 3)) + shift, 0, 255).astype(np.uint8)
            save(root / model / "sub" / f"{model}_{i:03d}.png", img)
    save(root / "model_b" / "extra.jpg", g.integers(0, 256, (h, w, 3), dtype=np.uint8))
    save(root / "model_b" / "rgba.png", g.integers(0, 256, (h, w, 4), dtype=np.uint8))
    save(root / "model_a" / "gray.png", g.integers(0, 256, (h, w), dtype=np.uint8))
    (root / "models.csv").write_text("model,family,upsampling\nmodel_a,GAN,nearest\nmodel_b,VAE,transposed\n")
    return root


# ---- where the ops suite runs manifpt_ext.project: the CPU code paths, the GPU, the CUDA emulation --------

# MANIFPT_CPU_ISA values: auto (the best kernel the CPU runs), every other packed-panel GEMM of the build
# (from its registry, csrc/ops/project/cpu/kernels.h: a new kernel joins the suite by itself), BLAS, portable.
CPU_PATHS = ("auto", *manifpt_ext.cpu_paths()[2:])  # [1], the best kernel, is what auto takes where the CPU has it


class Backend:
    """One place the ops suite (tests/test_project.py) runs manifpt_ext.project: a CPU code path
    ("cpu-auto", "cpu-avx2", "cpu-blas", "cpu-portable", chosen by MANIFPT_CPU_ISA, which the fixture
    sets), the GPU ("cuda", through the public op) or the CUDA emulation ("emulated": the same device
    code and host launcher compiled for the CPU, through manifpt_ext.ops._project_cuda_emulated).
    Inputs go through `to`; `check` holds a result to what that backend promises."""

    LIMIT_NAMES = (
        "max_threads_per_block",
        "max_block_x",
        "max_block_y",
        "max_block_z",
        "max_grid_x",
        "max_grid_y",
        "max_grid_z",
        "shared_per_block",
        "shared_per_block_optin",
        "warp_size",
    )

    def __init__(self, name):
        self.name = name
        self.is_kernel = name in ("cuda", "emulated")  # the CUDA kernels (on the GPU or emulated)
        self.device = torch.device("cuda" if name == "cuda" else "cpu")

    def __repr__(self):
        return self.name

    def to(self, t):
        return t.to(self.device)

    def project(self, fakes, reals, **kw):
        if self.name == "emulated":
            return manifpt_ext.ops._project_cuda_emulated(fakes, reals, **kw)
        return manifpt_ext.project(fakes, reals, **kw)

    def check(self, p, fakes, reals, max_uncertain=0.05):
        """The CPU paths rank with an exact float64 re-rank: bit for bit the reference. The CUDA kernels'
        default variant ranks in its accumulation type: see assert_kernel_result. Returns the mask of
        rows whose answer is certain."""
        if self.is_kernel:
            return assert_kernel_result(p, fakes, reals, max_uncertain)
        assert_matches_reference(p, fakes, reals)
        return torch.ones(fakes.shape[0], dtype=torch.bool)

    def project_kernel(self, fakes, reals, precision="exact", variant="auto", splits=0):
        """The CUDA op with its kernel choices (precision, variant "auto"/"mma"/"direct", splits)."""
        assert self.is_kernel, "project_kernel is the CUDA kernels' entry"
        fn = manifpt_ext.ops._project_cuda if self.name == "cuda" else manifpt_ext.ops._project_cuda_emulated
        return fn(fakes, reals, precision=precision, variant=variant, splits=splits)

    @property
    def op(self):
        """The op overload behind `project` (for torch.library.opcheck)."""
        if self.name == "emulated":
            return torch.ops.manifpt._project_cuda_emulated.default
        return torch.ops.manifpt.project.default

    def probe(self, kernel, input=None, grid=(1,), block=(1,), dynamic_smem=0, max_dynamic_smem=0):
        x = torch.zeros(1) if input is None else input
        return manifpt_ext.ops._cuda_probe(kernel, self.to(x), grid, block, dynamic_smem, max_dynamic_smem).cpu()

    def limits(self):
        return dict(zip(self.LIMIT_NAMES, self.probe("limits").tolist()))

    def sparse_buffer(self, numel, dtype):
        """A 1-D tensor of `numel` elements of which only the touched pages cost memory (CPU: an
        anonymous MAP_NORESERVE mapping); on the GPU a plain allocation. None when it cannot be had."""
        itemsize = torch.empty((), dtype=dtype).element_size()
        if self.name == "cuda":
            free, _ = torch.cuda.mem_get_info()
            if free < numel * itemsize + (2 << 30):
                return None
            return torch.empty(numel, dtype=dtype, device="cuda")
        import mmap

        map_noreserve = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform.startswith("linux") else 0)
        try:
            buf = mmap.mmap(-1, numel * itemsize, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | map_noreserve)
        except (OSError, ValueError, OverflowError):
            return None
        return torch.frombuffer(buf, dtype=dtype, count=numel)


CPU_BACKENDS = [pytest.param(f"cpu-{path}", id=f"cpu-{path}") for path in CPU_PATHS]
KERNEL_BACKENDS = [
    pytest.param("cuda", marks=[requires_cuda, pytest.mark.cuda], id="cuda"),
    pytest.param("emulated", id="emulated"),
]


def _sqdist64(x, y, chunk_elems=1 << 23):
    rows = max(1, chunk_elems // max(1, y.shape[0] * y.shape[1]))
    return torch.cat([((x[i : i + rows, None, :] - y[None]) ** 2).sum(-1) for i in range(0, x.shape[0], rows)])


def assert_kernel_result(p, fakes, reals, max_uncertain=0.05):
    """A result of the CUDA kernel against float64 arithmetic and manifpt_ext.project_reference.

    The kernel ranks in its accumulation type (float32; float64 for float64 inputs), exact up to the
    rounding of a sum of D squares, which moves a distance by at most a factor (1 + g) with
    g = gamma_{D+2}. On every row whose float64 runner-up is farther than that from the minimum, the
    index must be the reference's; on the other rows (at most `max_uncertain` of them, so the check
    is not vacuous) the chosen real's float64 distance must lie within that factor of the minimum.
    The artifact must equal fakes - reals[index] in the accumulation type exactly; the distance the
    float64 distance of the chosen real to rtol max(1e-5, 2 g). Returns the mask of certain rows."""
    m, n = fakes.shape[0], reals.shape[0]
    d = math.prod(reals.shape[1:])
    assert p.index.dtype == torch.long and p.distance.dtype == torch.float32
    assert p.artifact.shape == fakes.shape and p.artifact.dtype == fakes.dtype and p.artifact.device == fakes.device
    if m == 0:
        return torch.ones(0, dtype=torch.bool)
    index = p.index.cpu()
    assert bool(((index >= 0) & (index < n)).all()), f"index out of range: {index}"
    x = fakes.detach().cpu().reshape(m, d).double()
    y = reals.detach().cpu().reshape(n, d).double()
    d2 = _sqdist64(x, y)
    u = 2.0**-53 if fakes.dtype == torch.float64 else 2.0**-24
    g = (d + 2) * u / (1 - (d + 2) * u)
    best = d2.min(dim=1).values
    ref = manifpt_ext.project_reference(fakes.detach().cpu(), reals.detach().cpu()).index
    rows = torch.arange(m)
    others = d2.clone()
    others[rows, ref] = math.inf
    certain = others.min(dim=1).values > best * (1 + g) / (1 - g)
    assert torch.equal(index[certain], ref[certain]), f"rows {rows[certain][index[certain] != ref[certain]].tolist()} differ"
    chosen = d2[rows, index]
    assert bool((chosen <= best * (1 + g) / (1 - g)).all()), "a chosen real is farther than rounding allows"
    assert (~certain).float().mean().item() <= max_uncertain, f"{int((~certain).sum())} of {m} rows are near ties"
    acc = torch.float64 if fakes.dtype == torch.float64 else torch.float32
    flat_f, flat_r = fakes.detach().cpu().reshape(m, d), reals.detach().cpu().reshape(n, d)
    want = (flat_f.to(acc) - flat_r[index].to(acc)).to(fakes.dtype).reshape(fakes.shape)
    torch.testing.assert_close(p.artifact.cpu(), want, rtol=0, atol=0)
    torch.testing.assert_close(p.distance.cpu(), chosen.float(), rtol=max(1e-5, 2 * g), atol=1e-6)
    return certain


def assert_exact_result(p, x, y):
    """A result of the CUDA tensor-core kernel, which re-ranks its candidates in float64 on the original
    values: its index is the float64 reference's (ties to the lowest index), its distance that minimum
    in float32, and its artifact fakes - reals[index] in the accumulation type (float32; float64 for
    float64)."""
    x, y = x.detach().cpu(), y.detach().cpu()
    r = manifpt_ext.project_reference(x, y)
    bad = (p.index.cpu() != r.index).nonzero().flatten().tolist()
    assert not bad, f"rows {bad[:10]} differ from the float64 reference"
    m, n = x.shape[0], y.shape[0]
    d64 = ((x.reshape(m, -1).double() - y.reshape(n, -1)[r.index].double()) ** 2).sum(1)
    torch.testing.assert_close(p.distance.cpu(), d64.float(), rtol=2e-7, atol=0)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    want = (x.reshape(m, -1).to(acc) - y.reshape(n, -1)[r.index].to(acc)).to(x.dtype).reshape(x.shape)
    assert torch.equal(p.artifact.cpu(), want)


def run_ranks(target, args_of_rank, world: int, timeout: float = 120.0) -> None:
    """Starts `world` spawned processes target(*args_of_rank(rank)) and joins them; a rank still alive
    after `timeout` seconds is killed and fails the test (a hang must not stall the suite)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=args_of_rank(r)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=timeout)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung, f"{len(hung)} rank(s) hung"
