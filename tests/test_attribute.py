"""manifpt.Attributor: learns separable artifacts, resumes exactly, checkpoints are safe to load."""
import pytest
import torch
from helpers import toy_artifacts as toy

from manifpt.attribute import Attributor
from manifpt.train import read_checkpoint


def test_learns_image_artifacts_and_predicts_probabilities():
    x, y = toy(90)
    xv, yv = toy(30, seed=1)
    att = Attributor(3, (3, 8, 8), epochs=15, batch_size=16, seed=0)
    hist = att.fit(x, y, xv, yv, progress=False)
    assert hist[-1]["val_acc"] >= 0.9 or max(h["val_acc"] for h in hist) >= 0.9
    labels, probs = att.predict(xv)
    assert probs.shape == (30, 3) and torch.allclose(probs.sum(1), torch.ones(30))
    assert (labels == yv).float().mean() >= 0.9


def test_mlp_head_for_vector_artifacts():
    x, y = toy(90, shape=(40,))
    att = Attributor(3, (40,), epochs=20, batch_size=16, optimizer="sgd", lr=0.05)
    att.fit(x, y, *toy(30, shape=(40,), seed=1), progress=False)
    assert (att.predict(toy(30, shape=(40,), seed=2)[0])[0] == toy(30, shape=(40,), seed=2)[1]).float().mean() >= 0.9


def test_resume_reproduces_uninterrupted_training(tmp_path):
    x, y = toy(48)
    xv, yv = toy(12, seed=1)
    full = Attributor(3, (3, 8, 8), epochs=4, batch_size=8, seed=3, patience=10)
    full.fit(x, y, xv, yv, checkpoint=tmp_path / "full.pt", progress=False)
    part = Attributor(3, (3, 8, 8), epochs=4, batch_size=8, seed=3, patience=10)
    part.config["epochs"] = 2
    part.fit(x, y, xv, yv, checkpoint=tmp_path / "part.pt", progress=False)
    resumed = Attributor(3, (3, 8, 8), epochs=4, batch_size=8, seed=3, patience=10)
    state = read_checkpoint(tmp_path / "part.pt")
    state["settings"]["epochs"] = 4  # the run was stopped after 2 of 4 epochs
    torch.save(state, tmp_path / "part.pt")
    resumed.fit(x, y, xv, yv, checkpoint=tmp_path / "part.pt", resume=True, progress=False)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2, 3]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_save_load_and_bad_checkpoints(tmp_path):
    x, y = toy(30)
    att = Attributor(3, (3, 8, 8), epochs=1, class_names=["a", "b", "c"])
    att.fit(x, y, x, y, progress=False)
    att.save(tmp_path / "m.pt", extra={"space": "rgb"})
    att.fit_open_set(x, "fingerprint", 0.9, x, y)
    att.save(tmp_path / "m.pt", extra={"space": "rgb"})
    loaded, extra = Attributor.load(tmp_path / "m.pt")  # open-set statistics survive weights_only loading
    assert extra == {"space": "rgb"} and loaded.config["class_names"] == ["a", "b", "c"]
    assert torch.equal(loaded.predict(x, open_set=True)[0], att.predict(x, open_set=True)[0])
    assert torch.equal(loaded.predict(x)[1], att.predict(x)[1])
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or not a manifpt checkpoint"):
        Attributor.load(tmp_path / "trunc.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a manifpt attributor checkpoint"):
        Attributor.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        Attributor.load(tmp_path / "none.pt")


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown arch"):
        Attributor(3, (3, 8, 8), arch="vgg")
    with pytest.raises(ValueError, match="optimizer must be"):
        Attributor(3, (3, 8, 8), optimizer="lbfgs")
    att = Attributor(3, (3, 8, 8))
    with pytest.raises(ValueError, match=r"x_train must be \(N, 3, 8, 8\)"):
        att.fit(torch.zeros(4, 3, 4, 4), torch.zeros(4, dtype=torch.long), torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must lie in"):
        att.fit(torch.zeros(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]), torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))


def test_resnet50_arch_trains_a_step_on_freq_like_channels():
    att = Attributor(2, (6, 32, 32), arch="resnet50", epochs=1, batch_size=4)
    x, y = torch.randn(8, 6, 32, 32), torch.tensor([0, 1] * 4)
    att.fit(x, y, x[:4], y[:4], progress=False)
    assert att.predict(x)[1].shape == (8, 2)
