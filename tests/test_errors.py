"""Every bad input to manifpt_ext.project gives a clear error that names the argument, from the
Python wrapper and from the C++ op itself (torch.ops called directly)."""
import pytest
import torch

from manifpt_ext import project

OP = torch.ops.manifpt.project.default


def _xy(m=4, n=6, d=3, dtype=torch.float32):
    return torch.randn(m, d, dtype=dtype), torch.randn(n, d, dtype=dtype)


@pytest.mark.parametrize("where", ["fakes", "reals"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_nan_and_inf(where, bad, dtype):
    x, y = _xy(dtype=dtype)
    (x if where == "fakes" else y)[2, 1] = bad
    with pytest.raises(RuntimeError, match=f"{where} contains NaN or Inf"):
        project(x, y)


def test_overflowing_float64_is_not_called_nan():
    x, y = _xy(dtype=torch.float64)
    x[0, 0] = 1e200
    with pytest.raises(RuntimeError, match="fakes has values too large"):
        project(x, y)
    x, y = _xy(dtype=torch.float64)
    y[:] = 1e200  # normal fakes, huge reals: the fakes overflow once centred on the reals' mean
    with pytest.raises(RuntimeError, match="fakes has values too large"):
        project(x, y)


def test_empty_reals():
    x, _ = _xy()
    with pytest.raises(ValueError, match="reals is empty"):
        project(x, torch.empty(0, 3))
    with pytest.raises(RuntimeError, match="reals is empty"):
        OP(x, torch.empty(0, 3), 0, 0)


def test_shape_mismatch():
    x, y = _xy()
    with pytest.raises(ValueError, match=r"trailing shape S.*fakes \(4, 3\).*reals \(6, 4\)"):
        project(x, torch.randn(6, 4))
    with pytest.raises(RuntimeError, match="must share the trailing shape"):
        OP(x, torch.randn(6, 4), 0, 0)


def test_dtype_mismatch():
    x, y = _xy()
    with pytest.raises(TypeError, match="same dtype.*float32.*float64"):
        project(x, y.double())
    with pytest.raises(RuntimeError, match="same dtype"):
        OP(x, y.double(), 0, 0)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64])
def test_non_float_dtypes(dtype):
    x = torch.zeros(4, 3, dtype=dtype)
    with pytest.raises(TypeError, match="fakes must be float32, float64, float16 or bfloat16"):
        project(x, x)
    with pytest.raises(RuntimeError, match="fakes must be float32, float64, float16 or bfloat16"):
        OP(x, x, 0, 0)


def test_device_mismatch():
    x, y = _xy()
    with pytest.raises(ValueError, match="same device.*cpu.*meta"):
        project(x, y.to("meta"))


def test_zero_dim_and_empty_feature():
    with pytest.raises(ValueError, match="fakes must have a leading sample dimension"):
        project(torch.tensor(1.0), torch.randn(3, 1))
    with pytest.raises(ValueError, match=r"D = 0"):
        project(torch.randn(2, 0), torch.randn(3, 0))


def test_not_a_tensor():
    with pytest.raises(TypeError, match="reals must be a torch.Tensor, got list"):
        project(torch.randn(2, 3), [[1.0, 2.0, 3.0]])


def test_negative_tiles():
    x, y = _xy()
    with pytest.raises(ValueError, match="tile_m and tile_n must be >= 0"):
        project(x, y, tile_m=-1)
    with pytest.raises(RuntimeError, match="tile_m and tile_n must be >= 0"):
        OP(x, y, 0, -2)


def test_bad_cpu_isa_setting(monkeypatch):
    monkeypatch.setenv("MANIFPT_CPU_ISA", "sse9")
    x, y = _xy()
    with pytest.raises(RuntimeError, match="MANIFPT_CPU_ISA must be"):
        project(x, y)
