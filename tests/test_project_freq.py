"""manifpt_ext.project_freq (the channelwise FFT path): its fused post-FFT kernel under the CUDA emulation
against a Hermitian rebuild in Python and against freq_embed, project_freq against freq_embed + project, its
argument checks, and cuFFT's spectra on a GPU."""
import pytest
import torch
from helpers import assert_exact_result, make_pair

import manifpt_ext


FREQ_MODES = ["logmag", "magnitude", "complex"]


def _full_spectrum_from_half(half, w):
    """The full fftshifted H x W spectrum rebuilt from an rfft2 half spectrum by Hermitian symmetry
    (F[u][v] = conj(F[-u][-v])), in Python: what the post-FFT kernel must copy, value for value."""
    h, wh = half.shape[-2], half.shape[-1]
    u = torch.arange(h)[:, None].expand(h, w)
    v = torch.arange(w)[None, :].expand(h, w)
    direct = v < wh
    src_u = torch.where(direct, u, (h - u) % h)
    src_v = torch.where(direct, v, (w - v) % w).clamp(max=wh - 1)
    full = half[..., src_u, src_v]
    full = torch.where(direct, full, full.conj())
    return torch.fft.fftshift(full, dim=(-2, -1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 7, 5), (3, 1, 1, 1), (2, 3, 6, 1), (1, 1, 1, 9)], ids=str)
@pytest.mark.parametrize("mode", FREQ_MODES)
def test_freq_post_kernel_under_emulation(mode, shape, dtype):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=g, dtype=dtype)
    spec = torch.fft.rfft2(x)
    got = manifpt_ext.ops._freq_post_emulated(torch.view_as_real(spec).contiguous(), shape[-1], mode)
    full = _full_spectrum_from_half(spec, shape[-1])
    if mode == "complex":
        b, c, h, w = shape
        assert torch.equal(got, torch.view_as_real(full).permute(0, 1, 4, 2, 3).reshape(b, 2 * c, h, w))
    else:
        mag = full.abs()
        want = torch.log1p(mag) if mode == "logmag" else mag
        torch.testing.assert_close(got, want, rtol=4 * torch.finfo(dtype).eps, atol=0)
    # and the embedding of the paper's FREQ space (torch.fft.fft2 + fftshift), up to FFT rounding
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(got, manifpt_ext.freq_embed(x, mode), rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", FREQ_MODES)
def test_project_freq_is_freq_embed_then_project(mode):
    fakes, reals = make_pair(13, 40, (3, 8, 6), seed=4)
    want = manifpt_ext.project(manifpt_ext.freq_embed(fakes, mode), manifpt_ext.freq_embed(reals, mode))
    got = manifpt_ext.project_freq(fakes, reals, mode=mode)
    assert torch.equal(got.index, want.index) and torch.equal(got.artifact, want.artifact)
    assert torch.equal(got.distance, want.distance)
    pre = manifpt_ext.project_freq(fakes, mode=mode, real_spectra=manifpt_ext.freq_embed(reals, mode))
    assert torch.equal(pre.index, want.index)


def test_project_freq_arguments_are_checked():
    fakes, reals = make_pair(3, 4, (3, 4, 4))
    with pytest.raises(ValueError, match="mode must be one of"):
        manifpt_ext.project_freq(fakes, reals, mode="phase")
    with pytest.raises(ValueError, match="pass real_images or real_spectra"):
        manifpt_ext.project_freq(fakes)
    with pytest.raises(ValueError, match="real_spectra .* do not match"):
        manifpt_ext.project_freq(fakes, real_spectra=manifpt_ext.freq_embed(reals, "complex"))
    with pytest.raises(ValueError, match="fake_images must be a"):
        manifpt_ext.project_freq(fakes[0], reals)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
@pytest.mark.parametrize("mode", FREQ_MODES)
def test_freq_spectra_on_cuda_match_torch_fft(mode):
    fakes, reals = make_pair(9, 30, (3, 16, 12), seed=2)
    got = manifpt_ext.ops._freq_spectra(fakes.cuda(), mode).cpu()
    torch.testing.assert_close(got, manifpt_ext.freq_embed(fakes, mode), rtol=1e-4, atol=1e-4)
    p = manifpt_ext.project_freq(fakes.cuda(), reals.cuda(), mode=mode)
    fs, rs = (manifpt_ext.ops._freq_spectra(t.cuda(), mode) for t in (fakes, reals))
    assert_exact_result(p, fs, rs)  # the projection of cuFFT's spectra, exact
