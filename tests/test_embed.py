"""manifpt.spaces: rgb, freq (against torch.fft, Parseval), sl/ssl from local weights files."""
import pytest
import torch
import torchvision

import manifpt_ext
from manifpt.spaces import get_embedder
from manifpt.spaces.features import ResNetFeatures


def test_rgb_is_identity():
    x = torch.rand(5, 3, 8, 8)
    assert torch.equal(get_embedder("rgb", batch_size=2).embed(x), x)


def test_freq_modes_against_torch_fft():
    x = torch.rand(4, 3, 8, 6)
    spec = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))
    torch.testing.assert_close(get_embedder("freq").embed(x), torch.log1p(spec.abs()))
    torch.testing.assert_close(manifpt_ext.freq_embed(x, "magnitude"), spec.abs())
    c = manifpt_ext.freq_embed(x, "complex")
    assert c.shape == (4, 6, 8, 6)
    torch.testing.assert_close(c[:, 0::2], spec.real)
    torch.testing.assert_close(c[:, 1::2], spec.imag)
    with pytest.raises(ValueError, match="mode must be one of"):
        manifpt_ext.freq_embed(x, "phase")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        manifpt_ext.freq_embed(x[0])


def test_complex_spectrum_has_the_rgb_neighbours_but_logmag_does_not():
    g = torch.Generator().manual_seed(0)
    reals, fakes = torch.rand(200, 3, 8, 8, generator=g), torch.rand(50, 3, 8, 8, generator=g)
    rgb = manifpt_ext.project(fakes, reals).index
    comp = manifpt_ext.project(manifpt_ext.freq_embed(fakes.double(), "complex"), manifpt_ext.freq_embed(reals.double(), "complex"))
    assert torch.equal(comp.index, rgb)  # Parseval: |F(x - y)|^2 = H W |x - y|^2
    logmag = manifpt_ext.project(manifpt_ext.freq_embed(fakes), manifpt_ext.freq_embed(reals)).index
    assert (logmag != rgb).any()


@pytest.fixture(scope="module")
def resnet_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    sd = model.state_dict()
    torch.save(sd, d / "sl.pth")
    torch.save({k: v for k, v in sd.items() if not k.startswith("fc.")}, d / "ssl.pth")  # Barlow Twins style
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), d / "r18.pth")
    (d / "trunc.pth").write_bytes((d / "ssl.pth").read_bytes()[:5000])
    return d, model


@pytest.mark.parametrize("space", ["sl", "ssl"])
def test_resnet_features_match_torchvision(resnet_files, space):
    d, model = resnet_files
    emb = get_embedder(space, weights=d / f"{space}.pth", batch_size=2)
    x = torch.rand(3, 3, 32, 32)
    got = emb.embed(x)
    assert got.shape == (3, 2048)
    model.fc = torch.nn.Identity()
    xr = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        want = model((xr - mean) / std)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert emb.key().startswith(f"{space}-resnet50-")


def test_bad_weights(resnet_files, tmp_path, monkeypatch):
    d, _ = resnet_files
    with pytest.raises(ValueError, match="not a resnet50 state dict"):
        ResNetFeatures("sl", d / "r18.pth")
    with pytest.raises(ValueError, match="cannot read weights file"):
        ResNetFeatures("ssl", d / "trunc.pth")
    with pytest.raises(FileNotFoundError, match="weights file .* does not exist"):
        ResNetFeatures("sl", tmp_path / "none.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torchhome"))
    with pytest.raises(FileNotFoundError, match=r"never downloads.*hub/checkpoints/resnet50-0676ba61\.pth"):
        get_embedder("sl")
    with pytest.raises(ValueError, match="unknown space 'pixels'"):
        get_embedder("pixels")


def test_ssl_pretrain_gives_a_usable_ssl_space(tmp_path):
    from manifpt.ssl_pretrain import barlow_twins_loss, pretrain

    g = torch.Generator().manual_seed(0)
    images = torch.rand(24, 3, 16, 16, generator=g)
    losses = pretrain(images, tmp_path / "ssl.pth", epochs=2, batch_size=12, proj_dim=64, progress=False)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    emb = get_embedder("ssl", weights=tmp_path / "ssl.pth")
    assert emb.embed(images[:3]).shape == (3, 512) and emb.key().startswith("ssl-resnet18-")
    # embedded at the size it was trained at (16), not ImageNet's 224: larger inputs are brought down to it
    assert emb.input_size == (16, 16)
    big = torch.nn.functional.interpolate(images[:3], size=(32, 32), mode="bilinear", align_corners=False)
    small = torch.nn.functional.interpolate(big, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(emb.embed(big), emb.embed(small), atol=1e-5)
    z = torch.randn(32, 8)
    assert barlow_twins_loss(z, z) < barlow_twins_loss(z, torch.randn(32, 8))  # identical views cost less
    with pytest.raises(ValueError, match="at least 4 images"):
        pretrain(images[:2], tmp_path / "x.pth")
