"""manifpt.data: the GM folder layout, image decoding, splits and bad files."""
import numpy as np
import pytest
import torch
from helpers import make_gm_folder, save

from manifpt.data import BadImagesError, ImageFolderGM, list_images, load_images


def test_layout_labels_factors(tmp_path):
    ds = ImageFolderGM(make_gm_folder(tmp_path / "gm"), size=16)
    assert ds.models == ["model_a", "model_b"]
    assert len(ds.real_files) == 12 and len(ds.files) == 7 + 8
    assert ds.labels.count(0) == 7 and ds.labels.count(1) == 8
    assert ds.factors["model_b"] == {"family": "VAE", "upsampling": "transposed"}
    reals, paths = ds.load_reals()
    assert reals.shape == (12, 3, 16, 16) and reals.dtype == torch.float32
    assert 0.0 <= reals.min() and reals.max() <= 1.0
    images, labels, _ = ds.load(list(range(len(ds.files))))
    assert images.shape == (15, 3, 16, 16) and labels.tolist() == ds.labels


def test_rgba_gray_jpeg_decoded_to_rgb(tmp_path):
    g = np.random.default_rng(1)
    rgba = save(tmp_path / "a.png", g.integers(0, 256, (8, 8, 4), dtype=np.uint8))
    gray = save(tmp_path / "g.png", g.integers(0, 256, (8, 8), dtype=np.uint8))
    x, keep = load_images([rgba, gray])
    assert x.shape == (2, 3, 8, 8) and keep == [0, 1]
    assert torch.equal(x[1, 0], x[1, 1])  # gray replicated to 3 channels


def test_center_crop_keeps_aspect_and_resize_stretches(tmp_path):
    img = np.zeros((10, 30, 3), dtype=np.uint8)
    img[:, 10:20] = 255  # a white band in the middle third
    p = save(tmp_path / "wide.png", img)
    crop, _ = load_images([p], 10)
    stretch, _ = load_images([p], 10, mode="resize")
    assert crop.shape == stretch.shape == (1, 3, 10, 10)
    assert crop.mean() > 0.9  # the centre crop is the white band
    assert 0.2 < stretch.mean() < 0.5
    with pytest.raises(ValueError, match="mode must be"):
        load_images([p], 10, mode="zoom")


def test_split_is_stratified_disjoint_and_seeded(tmp_path):
    ds = ImageFolderGM(make_gm_folder(tmp_path / "gm", n_model=20))
    s1, s2, s3 = ds.split(seed=1), ds.split(seed=1), ds.split(seed=2)
    assert s1 == s2 and s1 != s3
    parts = [set(s1[k]) for k in ("train", "val", "test")]
    assert sum(map(len, parts)) == len(ds.files) and set().union(*parts) == set(range(len(ds.files)))
    for label in (0, 1):
        assert any(ds.labels[i] == label for i in s1["test"]) and any(ds.labels[i] == label for i in s1["val"])
    with pytest.raises(ValueError, match="fractions"):
        ds.split(fractions=(0.5, 0.5, 0.5))


def test_corrupt_file_is_reported_by_path(tmp_path):
    root = make_gm_folder(tmp_path / "gm")
    bad = root / "model_a" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds = ImageFolderGM(root, size=16)
    with pytest.raises(BadImagesError, match=r"(?s)1 unreadable image file.*broken\.png"):
        ds.load(list(range(len(ds.files))))
    images, labels, paths = ds.load(list(range(len(ds.files))), skip_bad=True)
    assert bad not in paths and len(paths) == len(ds.files) - 1 == images.shape[0] == labels.shape[0]


def test_bad_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderGM(tmp_path / "nope")
    (tmp_path / "noreal" / "m").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no 'real/' folder"):
        ImageFolderGM(tmp_path / "noreal")
    root = make_gm_folder(tmp_path / "gm")
    (root / "empty_model").mkdir()
    with pytest.raises(ValueError, match="empty_model holds no images"):
        ImageFolderGM(root)
    (root / "empty_model").rmdir()
    (root / "models.csv").write_text("model,family\nmodel_z,GAN\n")
    with pytest.raises(ValueError, match="models with no folder"):
        ImageFolderGM(root)
    with pytest.raises(ValueError, match="different sizes"):
        load_images([list_images(root / "real")[0], save(tmp_path / "big.png", np.zeros((5, 5, 3), np.uint8))])
