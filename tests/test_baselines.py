"""The ten baselines (the paper's eight, NPR and FSD) at toy size: one interface, features of the right
shape, each learns an easy two-class task (smooth mid-range images vs clipped white noise), and their
feature maps are checked where they can be computed by hand."""
import numpy as np
import pytest
import torch

from manifpt.baselines import BASELINES, make_baseline
from manifpt.baselines.durall20 import azimuthal_profile
from manifpt.baselines.fsd import SUPPORTS, GaussianMixtureClassifier, fit_filter, residual, self_description
from manifpt.baselines.nataraj19 import cooccurrence
from manifpt.baselines.npr import npr_residual

FAST = {
    "mccloskey18": {},
    "durall20": {},
    "dzanic20": {},
    "nataraj19": {"epochs": 3, "levels": 64, "padding": "same"},  # the cpu preset; 256 levels: test_nataraj19_paper_network
    "wang20": {"arch": "small", "load_size": 36, "input_size": 32, "epochs": 8, "lr": 1e-3, "p_blur": 0.1, "p_jpeg": 0.1},
    "marra18": {"input_size": 75, "epochs": 10, "batch_size": 8},
    "marra19": {"epochs": 4, "memory": 20},
    "yu19": {"input_size": 32, "epochs": 8, "lr": 1e-3},
    "npr": {"epochs": 6, "lr": 1e-3},
    "fsd": {},
}


def toy(n=40, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(n // 2, 3, size + 7, size + 7, generator=g), 8, 1)
    smooth = 0.35 + 0.3 * (smooth - smooth.amin()) / (smooth.amax() - smooth.amin())
    noise = (torch.rand(n // 2, 3, size, size, generator=g) * 1.4 - 0.2).clamp(0, 1)
    x = torch.cat([smooth, noise])
    y = torch.tensor([0] * (n // 2) + [1] * (n // 2))
    perm = torch.randperm(n, generator=g)
    return x[perm], y[perm]


@pytest.mark.parametrize("name", list(BASELINES))
def test_learns_easy_task(name):
    x, y = toy(40)
    xt, yt = toy(20, seed=1)
    b = make_baseline(name, seed=0, **FAST[name])
    b.use_reals(toy(20, seed=2)[0])  # only FSD uses them (its filters)
    b.fit(x, y, xt, yt)
    pred = b.predict(xt)
    assert pred.shape == (20,) and pred.dtype == np.int64
    assert (pred == yt.numpy()).mean() >= 0.8, name
    f = b.features(xt)
    assert f.ndim == 2 and f.shape[0] == 20 and np.isfinite(f).all()
    p = b.probabilities(xt)
    assert p.shape == (20, 2) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(p.argmax(axis=1), pred)
    if name != "fsd":  # FSD's confidence is a log-likelihood, not a probability
        assert np.allclose(b.confidence(xt), p.max(axis=1), atol=1e-6)


def test_all_ten_are_registered():
    assert sorted(BASELINES) == sorted(["mccloskey18", "nataraj19", "durall20", "dzanic20", "wang20", "marra18",
                                        "marra19", "yu19", "npr", "fsd"])
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("ours")


def test_cooccurrence_by_hand():
    img = torch.zeros(1, 3, 2, 3)
    img[0, 0, 0] = torch.tensor([0, 1, 1]) / 255  # red row 0: pairs (0,1), (1,1)
    c = cooccurrence(img)
    assert c.shape == (1, 3, 256, 256)
    assert c[0, 0, 0, 1] == 0.25 and c[0, 0, 1, 1] == 0.25 and c[0, 0, 0, 0] == 0.5  # 4 pairs per channel
    assert torch.allclose(c.sum(dim=(2, 3)), torch.ones(1, 3))


def test_cooccurrence_levels_by_hand():
    img = torch.tensor([0, 3, 4, 255], dtype=torch.float32).view(1, 1, 1, 4).expand(1, 3, 1, 4) / 255
    c = cooccurrence(img, levels=64)  # 4 values per bin: 0 and 3 -> 0, 4 -> 1, 255 -> 63
    assert c.shape == (1, 3, 64, 64)
    assert c[0, 1, 0, 0] == c[0, 1, 0, 1] == c[0, 1, 1, 63] == pytest.approx(1 / 3)
    assert torch.allclose(c.sum(dim=(2, 3)), torch.ones(1, 3))


def test_nataraj19_paper_network():
    b = make_baseline("nataraj19")  # 256 levels, unpadded: 256 -> 6 x 6 x 128 before the dense layers
    x = b.transform(torch.rand(2, 3, 16, 16), train=False)
    assert x.shape == (2, 3, 256, 256) and float(x.mean()) == pytest.approx(1.0)
    assert b.make_net(5)(x).shape == (2, 5)
    small = make_baseline("nataraj19", levels=64, padding="same")
    assert small.make_net(5)(small.transform(torch.rand(2, 3, 16, 16), train=False)).shape == (2, 5)


def test_mccloskey_features_by_hand():
    img = torch.full((1, 3, 2, 2), 0.5)
    img[0, 0, 0, 0] = 1.0  # one saturated red pixel
    img[0, :, 1, 1] = 0.0  # one pixel under-exposed in every channel
    f = make_baseline("mccloskey18").features(img)[0]
    assert f.tolist() == [0.25, 0, 0, 0.25, 0.25, 0.25, 0.25, 0.25]


def test_durall_profile_is_normalised_and_sized():
    p = azimuthal_profile(torch.rand(3, 3, 32, 32))
    assert p.shape == (3, 16) and np.allclose(p.min(1), 0) and np.allclose(p.max(1), 1)


def test_bad_parameters():
    with pytest.raises(ValueError, match="underexposed < saturated"):
        make_baseline("mccloskey18", saturated=10, underexposed=20)
    with pytest.raises(ValueError, match="input_size >= 75"):
        make_baseline("marra18", input_size=32)
    with pytest.raises(ValueError, match="power of two"):
        make_baseline("yu19", input_size=48)
    with pytest.raises(ValueError, match="must not exceed load_size"):
        make_baseline("wang20", load_size=32, input_size=64)
    with pytest.raises(ValueError, match=r"float \(N, 3, H, W\)"):
        make_baseline("durall20").features(torch.zeros(2, 32, 32))
    with pytest.raises(ValueError, match="levels >= 105"):
        make_baseline("nataraj19", levels=64)
    with pytest.raises(ValueError, match="levels must be in"):
        make_baseline("nataraj19", levels=512)
    with pytest.raises(RuntimeError, match="call fit"):
        make_baseline("nataraj19").predict(torch.rand(2, 3, 8, 8))


def test_wang20_training_augmentation():
    b = make_baseline("wang20", arch="small", load_size=40, input_size=32, p_blur=1.0, p_jpeg=1.0)
    x = torch.rand(3, 3, 20, 20)
    out = b.transform(x, train=True, gen=torch.Generator().manual_seed(0))
    assert out.shape == (3, 3, 32, 32) and torch.isfinite(out).all()
    assert b.transform(x, train=False).shape == (3, 3, 32, 32)


def _interrupt_after(n_calls, fn):
    """fn, raising KeyboardInterrupt on its n_calls-th call (an interrupted training, at a known point)."""
    count = {"n": 0}

    def wrapped(*a, **k):
        count["n"] += 1
        if count["n"] == n_calls:
            raise KeyboardInterrupt
        return fn(*a, **k)

    return wrapped


def test_torch_baseline_resumes_bit_exactly(tmp_path):
    """Cut in its third epoch (40 images, batches of 32: two training batches an epoch), a torch baseline
    continues from its last checkpoint and ends with the weights of an uninterrupted fit."""
    x, y = toy(40)
    xv, yv = toy(20, seed=1)
    params = {"input_size": 32, "epochs": 4, "lr": 1e-3, "seed": 0, "patience": 10}
    whole = make_baseline("yu19", **params).fit(x, y, xv, yv)
    cut = make_baseline("yu19", **params)
    train_transform = cut.transform
    calls = {"n": 0}  # training batches only: validation calls the transform too

    def transform(images, train, gen=None):
        calls["n"] += train
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return train_transform(images, train, gen)

    cut.transform = transform
    with pytest.raises(KeyboardInterrupt):
        cut.fit(x, y, xv, yv, checkpoint=tmp_path / "ck.pt")
    from manifpt.train import read_checkpoint

    assert read_checkpoint(tmp_path / "ck.pt")["epoch"] == 1
    resumed = make_baseline("yu19", **params).fit(x, y, xv, yv, checkpoint=tmp_path / "ck.pt", resume=True)
    for (k, a), b in zip(whole.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="another configuration"):
        make_baseline("yu19", **{**params, "lr": 1e-4}).fit(x, y, xv, yv, checkpoint=tmp_path / "ck.pt", resume=True)


def test_marra19_resumes_between_and_inside_class_steps(tmp_path, monkeypatch):
    """Marra19 learns one class at a time: cut inside its second class step, it continues from the finished
    first step (CHECKPOINT.steps) and the step's last epoch, and ends where an uninterrupted fit does."""
    import torch.nn.functional as F

    x, y = toy(40)
    params = {"epochs": 2, "memory": 20, "seed": 0}
    whole = make_baseline("marra19", **params).fit(x, y)
    loss = F.binary_cross_entropy_with_logits
    # 40 images, batches of 32: step 0 trains 20 images (1 batch x 2 epochs), step 1 trains 40 (2 x 2):
    # call 5 is the second batch of step 1's second epoch, after its first epoch's checkpoint
    monkeypatch.setattr(F, "binary_cross_entropy_with_logits", _interrupt_after(5, loss))
    with pytest.raises(KeyboardInterrupt):
        make_baseline("marra19", **params).fit(x, y, checkpoint=tmp_path / "ck.pt")
    monkeypatch.setattr(F, "binary_cross_entropy_with_logits", loss)
    assert torch.load(tmp_path / "ck.pt.steps", weights_only=True)["step"] == 0
    resumed = make_baseline("marra19", **params).fit(x, y, checkpoint=tmp_path / "ck.pt", resume=True)
    assert torch.equal(resumed.means, whole.means)
    for (k, a), b in zip(whole.extractor.state_dict().items(), resumed.extractor.state_dict().values()):
        assert torch.equal(a, b), k


def test_npr_residual_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).view(1, 1, 2, 3)
    # 2 x 2 blocks keep their top-left pixel (1, then 3 for the odd last column): x minus it
    assert npr_residual(x).view(2, 3).tolist() == [[0, 1, 0], [3, 4, 3]]
    assert torch.equal(npr_residual(torch.full((2, 3, 4, 4), 0.7)), torch.zeros(2, 3, 4, 4))


def test_npr_network_size_and_local_weights(tmp_path):
    b = make_baseline("npr")
    net = b.make_net(5)
    # ResNet-50 to layer2 with a 3 x 3 stem: 1,728 (stem) + 128 (its BN) + 215,808 (layer1) + 1,219,584 (layer2)
    assert sum(p.numel() for p in net.features.parameters()) == 1_437_248
    assert net(b.transform(torch.rand(2, 3, 32, 32), train=False)).shape == (2, 5)
    torch.save(net.features.state_dict(), tmp_path / "npr.pth")
    loaded = make_baseline("npr", weights=str(tmp_path / "npr.pth")).make_net(3)
    assert all(torch.equal(v, loaded.features.state_dict()[k]) for k, v in net.features.state_dict().items())
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="does not fit"):
        make_baseline("npr", weights=str(tmp_path / "bad.pth")).make_net(3)


def test_fsd_filter_is_the_constrained_least_squares_optimum():
    """Against a float64 oracle: the weights minimising sum (x - sum_k w_k x_k)^2 subject to sum_k w_k = 1,
    solved by its Lagrange (KKT) system over every centre pixel, gathered by loops."""
    g = np.random.default_rng(0)
    x = g.random((2, 3, 9, 10))
    offsets = SUPPORTS["causal"]
    rows, target = [], []
    for n in range(2):
        for c in range(3):
            for i in range(1, 8):
                for j in range(1, 9):
                    rows.append([x[n, c, i + dy, j + dx] for dy, dx in offsets])
                    target.append(x[n, c, i, j])
    a, t = np.array(rows), np.array(target)
    k = len(offsets)
    kkt = np.block([[2 * a.T @ a, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
    oracle = np.linalg.solve(kkt, np.r_[2 * a.T @ t, 1.0])[:k]
    est = fit_filter(torch.from_numpy(x), offsets)
    assert np.allclose(est, oracle, atol=1e-7) and est.sum() == pytest.approx(1)
    res = residual(torch.from_numpy(x), offsets, est)
    assert res.shape == (2, 3, 7, 8) and np.allclose(res.flatten().numpy(), t - a @ est)
    flat = torch.full((1, 3, 8, 8), 0.6, dtype=torch.float64)  # weights summing to 1: a flat image leaves nothing
    assert residual(flat, SUPPORTS["ring5"], fit_filter(torch.from_numpy(x), SUPPORTS["ring5"])).abs().max() < 1e-12


def test_fsd_self_description_by_hand():
    """A constant residual map 2: every neighbour is 2, so ridge least squares (J + ridge I) c = 1 gives
    c = 1 / (4 + ridge) each, and the prediction error is 2 ridge / (4 + ridge)."""
    ridge = 0.5
    d = self_description(torch.full((1, 3, 6, 6), 2.0), ridge)[0].double()
    assert torch.allclose(d[:4], torch.full((4,), 1 / 4.5, dtype=torch.float64), atol=1e-6)
    assert d[4] == pytest.approx(np.log(4 + 1e-10), abs=1e-6)
    assert d[5] == pytest.approx(np.log((2 * ridge / 4.5) ** 2 + 1e-10), abs=1e-5)


def test_gaussian_mixture_classifier_attributes_and_flags_the_unknown():
    g = np.random.default_rng(0)
    x = np.concatenate([g.normal(-10, 1, (60, 2)), g.normal(10, 1, (60, 2))])
    y = np.r_[np.zeros(60), np.ones(60)].astype(int)
    gmm = GaussianMixtureClassifier(components=2, seed=0).fit(x, y)
    assert np.array_equal(gmm.predict(x), y)  # clusters 20 standard deviations apart
    far = gmm.log_likelihoods(np.array([[100.0, -100.0]])).max()
    assert far < gmm.log_likelihoods(x).max(axis=1).min()  # no source explains the far point


def test_fsd_needs_reals_and_checks_its_parameters():
    with pytest.raises(RuntimeError, match="use_reals"):
        make_baseline("fsd").features(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="supports must be among"):
        make_baseline("fsd", supports=("ring7",))
    with pytest.raises(ValueError, match="at least 18 x 18"):
        make_baseline("fsd").use_reals(torch.rand(2, 3, 16, 16))
    f = make_baseline("fsd").use_reals(torch.rand(4, 3, 32, 32)).features(torch.rand(3, 3, 32, 32))
    assert f.shape == (3, 6 * 3 * 2)  # 6 numbers per residual map, 3 supports x 2 scales
