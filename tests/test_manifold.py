"""manifpt.RealManifold: reals embedded once and cached, artifacts in the target space or with RGB
neighbours, copies of reals flagged."""
import pytest
import torch
from helpers import make_gm_folder

import manifpt_ext
from manifpt.data import ImageFolderGM
from manifpt.spaces import get_embedder
from manifpt.manifold import RealManifold


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(60, 3, 8, 8, generator=g), torch.rand(9, 3, 8, 8, generator=g)


def test_rgb_artifacts_and_cache(tmp_path, monkeypatch):
    reals, fakes = _data()
    m = RealManifold(get_embedder("rgb"), reals, cache_dir=tmp_path)
    assert m.cache_path.is_file() and torch.equal(m.embedded, reals)
    a = m.artifacts(fakes)
    p = manifpt_ext.project(fakes, reals)
    assert torch.equal(a.index, p.index) and torch.equal(a.artifact, p.artifact) and not a.identical.any()
    emb = get_embedder("rgb")
    monkeypatch.setattr(emb, "embed", lambda *a, **k: pytest.fail("the cached embedding was not used"))
    assert torch.equal(RealManifold(emb, reals, cache_dir=tmp_path).embedded, reals)
    other = RealManifold(get_embedder("freq"), reals, cache_dir=tmp_path)  # another space: another key
    assert other.cache_path != m.cache_path


def test_freq_space_default_and_rgb_neighbours():
    reals, fakes = _data(1)
    freq = get_embedder("freq")
    m = RealManifold(freq, reals)
    own = m.artifacts(fakes)
    p = manifpt_ext.project(freq.embed(fakes), freq.embed(reals))
    assert torch.equal(own.index, p.index) and torch.equal(own.artifact, p.artifact)
    via_rgb = m.artifacts(fakes, neighbour_space="rgb")
    rgb_index = manifpt_ext.project(fakes, reals).index
    assert torch.equal(via_rgb.index, rgb_index)
    assert torch.equal(via_rgb.artifact, freq.embed(fakes) - freq.embed(reals)[rgb_index])
    with pytest.raises(ValueError, match="neighbour_space must be"):
        m.artifacts(fakes, neighbour_space="sl")


def test_copies_of_reals_are_flagged():
    reals, fakes = _data(2)
    fakes[3] = reals[17]
    m = RealManifold(get_embedder("rgb"), reals)
    with pytest.warns(UserWarning, match="1 of 9 fakes are pixel-identical"):
        a = m.artifacts(fakes)
    assert a.identical.tolist() == [i == 3 for i in range(9)]
    assert a.index[3] == 17 and torch.all(a.artifact[3] == 0)


def test_from_files_and_bad_shapes(tmp_path):
    ds = ImageFolderGM(make_gm_folder(tmp_path / "gm"), size=12)
    m = RealManifold(get_embedder("rgb"), ds.real_files, size=12, cache_dir=tmp_path / "c")
    assert m.embedded.shape == (12, 3, 12, 12)
    with pytest.raises(ValueError, match=r"fakes must be \(M, 3, 12, 12\)"):
        m.artifacts(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="non-empty"):
        RealManifold(get_embedder("rgb"), torch.rand(0, 3, 4, 4))
