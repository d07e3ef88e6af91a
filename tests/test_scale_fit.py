"""Artifacts on disk and training under torchrun, at toy size: the streamed store equals the in-RAM one bit
for bit and resumes chunk by chunk; the streamed statistics match a float64 reference; fit and evaluate
read batches and chunks, never the whole array; `project`'s folder is adopted as a store; 2 gloo ranks
(spawned on loopback) train like one process, resume bit-exactly, and fail instead of hanging when one
is killed."""
import json
import os
import signal
import traceback
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
from helpers import make_gm_folder, run_ranks, toy_artifacts

from manifpt import artifact_store
from manifpt.artifact_store import ARRAYS, ArtifactStore, ChunkedWriter, Rows, parse_bytes, streamed_stats
from manifpt.attribute import Attributor
from manifpt.cli import main
from manifpt.train import accuracy_of, train
from manifpt.workflow import run_artifacts


@pytest.fixture(scope="module")
def gm(tmp_path_factory):
    return make_gm_folder(tmp_path_factory.mktemp("gm"), n_real=12, n_model=20)


def _arrays(folder):
    return {n: np.load(folder / f"{n}.npy") for n in ARRAYS}


@pytest.mark.parametrize("space,neighbour", [("rgb", None), ("freq", "rgb")])
def test_streamed_store_equals_in_ram(gm, tmp_path, space, neighbour):
    run_artifacts(gm, space, tmp_path / "ram", size=16, neighbour_space=neighbour, progress=False)
    run_artifacts(gm, space, tmp_path / "disk", size=16, neighbour_space=neighbour, progress=False, memory_budget=40_000)
    meta = json.loads((tmp_path / "disk" / "store.json").read_text())
    assert meta["rows"] == 43 and meta["chunk"] < 10  # several chunks
    ram, disk = _arrays(tmp_path / "ram"), _arrays(tmp_path / "disk")
    for name in ARRAYS:
        assert ram[name].dtype == disk[name].dtype and np.array_equal(ram[name], disk[name]), name


def test_store_resumes_chunk_by_chunk(tmp_path):
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    rows = lambda lo, hi: {"artifacts": x[lo:hi], "labels": np.arange(lo, hi) % 2, "index": np.arange(lo, hi),  # noqa: E731
                           "distance": x[lo:hi, 0], "identical": np.zeros(hi - lo, bool)}
    w = ChunkedWriter(tmp_path, 10, (2,), 3, key={"run": 1})
    for k in (0, 2):
        w.write(k, rows(*w.bounds(k)))
    del w  # killed here: nothing looks finished
    assert not (tmp_path / "store.json").exists() and not (tmp_path / "artifacts.npy").exists()
    w = ChunkedWriter(tmp_path, 10, (2,), 3, key={"run": 1})
    assert w.resumed and w.todo() == [1, 3]
    for k in w.todo():
        w.write(k, rows(*w.bounds(k)))
    w.finish({"models": ["a", "b"]})
    got = _arrays(tmp_path)
    assert np.array_equal(got["artifacts"], x) and np.array_equal(got["index"], np.arange(10))
    assert not (tmp_path / ".partial").exists()
    other = tmp_path / "other"
    ChunkedWriter(other, 10, (2,), 3, key={"run": 1}).write(0, rows(0, 3))
    assert ChunkedWriter(other, 10, (2,), 3, key={"run": 2}).todo() == [0, 1, 2, 3]  # another run starts again


@pytest.mark.parametrize("piece", [None, 20])  # 20 elements: a chunk is also split into pieces of rows
@pytest.mark.parametrize("shape", [(3, 5, 4), (7,)])
def test_streamed_stats_match_float64_reference(shape, piece, monkeypatch):
    if piece is not None:
        monkeypatch.setattr(artifact_store, "STATS_PIECE_ELEMENTS", piece)
    g = torch.Generator().manual_seed(0)
    x = 1000 + 0.01 * torch.randn(50, *shape, generator=g)  # a large mean over a small spread: cancellation-prone
    dims = (0, 2, 3) if x.dim() == 4 else (0,)
    x64 = x.double().numpy()
    ref_mean = x64.mean(axis=dims, keepdims=True)
    ref_std = np.sqrt(((x64 - ref_mean) ** 2).sum(axis=dims, keepdims=True) / (x64.size / x64.shape[1] - 1))
    for chunk in (1, 7, 50):
        mean, std = streamed_stats(x[i : i + chunk] for i in range(0, 50, chunk))
        assert mean.shape == ref_mean.shape
        np.testing.assert_allclose(mean.double().numpy(), ref_mean, rtol=1e-6)
        np.testing.assert_allclose(std.double().numpy(), ref_std, rtol=1e-5)


def _toy_store(folder, n=90):
    x, y = toy_artifacts(n, (3, 8, 8), k=3)
    w = ChunkedWriter(folder, n, (3, 8, 8), 32, key="toy")
    for k in w.todo():
        lo, hi = w.bounds(k)
        w.write(k, {"artifacts": x[lo:hi].numpy(), "labels": y[lo:hi].numpy(), "index": np.arange(lo, hi),
                    "distance": np.ones(hi - lo, np.float32), "identical": np.zeros(hi - lo, bool)})
    w.finish({"models": ["a", "b", "c"], "space": "rgb"})
    return x, y


def test_fit_from_disk_reads_batches_and_equals_in_ram(tmp_path):
    x, y = _toy_store(tmp_path)
    store = ArtifactStore(tmp_path)
    reader = store.reader()
    cfg = dict(epochs=3, batch_size=16, patience=5, seed=0)
    budget = 4 * 8 * 3 * 8 * 8 * 4  # four 8-row chunks
    disk = Attributor(3, (3, 8, 8), **cfg)
    disk.fit(Rows(reader, store.labels, torch.arange(60)), x_val=Rows(reader, store.labels, torch.arange(60, 90)),
             progress=False, memory_budget=budget)
    ram = Attributor(3, (3, 8, 8), **cfg)
    ram.fit(x[:60], y[:60], x[60:], y[60:], progress=False, memory_budget=budget)
    for (name, a), b in zip(disk.model.state_dict().items(), ram.model.state_dict().values()):
        assert torch.equal(a, b), name
    epochs = len(disk.history)
    assert epochs == 3
    # the statistics pass (60 rows), then per epoch the 60 training rows in batches and the 30 validation rows
    assert reader.rows_read == 60 + epochs * (60 + 30)
    assert reader.largest_read == 16  # a batch: never the 90-row array


def test_every_scoring_pass_hands_the_heap_back_first(tmp_path, monkeypatch):
    """heap.trim() once per scoring pass (validation after each epoch, predict): a pass after many training
    steps would otherwise land on top of the holes they left in the heap (heap.py)."""
    from manifpt import heap

    x, y = _toy_store(tmp_path)
    calls = []
    monkeypatch.setattr(heap, "trim", lambda: calls.append(1) or True)
    att = Attributor(3, (3, 8, 8), epochs=2, batch_size=16, patience=5, seed=0)
    att.fit(x[:60], y[:60], x[60:], y[60:], progress=False)
    assert len(calls) == 2  # one validation pass per epoch
    att.predict(x[60:])
    assert len(calls) == 3


def test_read_ahead_keeps_order_fetches_one_ahead_and_raises_in_place():
    import time

    from manifpt.artifact_store import read_ahead

    fetched = []

    def source(fail_at=None):
        for i in range(5):
            if i == fail_at:
                raise ValueError(f"bad batch {i}")
            fetched.append(i)
            yield i

    got = []
    for item in read_ahead(source()):
        want = min(item + 2, 5)  # this item and the next, read while this one is in use
        deadline = time.monotonic() + 30
        while len(fetched) < want and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(fetched) == want, (item, fetched)
        got.append(item)
    assert got == [0, 1, 2, 3, 4]
    seen = []
    with pytest.raises(ValueError, match="bad batch 2"):
        for i in read_ahead(source(fail_at=2)):
            seen.append(i)
    assert seen == [0, 1]  # the items before the failing one, then its error
    gen = read_ahead(source())
    assert next(gen) == 0
    gen.close()  # a step that fails mid-epoch: the thread's one pending read ends, nothing hangs


def test_cli_store_fit_evaluate(gm, tmp_path):
    st, fit, ev = tmp_path / "st", tmp_path / "fit", tmp_path / "ev"
    assert main(["artifacts", "--data", str(gm), "--size", "16", "--memory-budget", "40KB", "--out", str(st), "--device", "cpu"]) == 0
    assert main(["fit", "--artifacts", str(st), "--epochs", "2", "--precision", "fp32", "--memory-budget", "1MB",
                 "--out", str(fit), "--device", "cpu"]) == 0
    r = json.loads((fit / "results.json").read_text())
    assert r["precision"] == "fp32" and r["sizes"] == {"train": 30, "val": 6, "test": 7}
    assert main(["evaluate", "--model", str(fit / "model.pt"), "--artifacts", str(st), "--memory-budget", "60KB",
                 "--out", str(ev), "--device", "cpu"]) == 0
    e = json.loads((ev / "results.json").read_text())
    att, _ = Attributor.load(fit / "model.pt")
    a, y = torch.from_numpy(np.load(st / "artifacts.npy")), np.load(st / "labels.npy")
    assert e["accuracy"] == float((att.predict(a)[0].numpy() == y).mean())
    assert e["rows_read"] == 43 and e["largest_read"] == 5  # chunks of 60 KiB / (4 buffers x 3072 bytes a row)


def test_memory_budget_and_precision_are_checked(tmp_path, capsys):
    assert parse_bytes("2GB") == 2 << 30 and parse_bytes("512MiB") == 512 << 20 and parse_bytes("1000") == 1000
    with pytest.raises(ValueError, match="--memory-budget must be a size"):
        parse_bytes("two gigs")
    with pytest.raises(ValueError, match="precision must be 'auto', 'bf16' or 'fp32'"):
        Attributor(2, (4,), precision="fp16")
    assert not Attributor(2, (4,), device="cpu").amp  # auto is fp32 off CUDA
    x, y = toy_artifacts(60, (3, 8, 8), k=3)
    att = Attributor(3, (3, 8, 8), epochs=1, precision="bf16")  # autocast on the CPU, asked for
    att.fit(x[:40], y[:40], x[40:], y[40:], progress=False)
    att.save(tmp_path / "m.pt")
    back, _ = Attributor.load(tmp_path / "m.pt")
    assert back.amp and back.config["precision"] == "bf16"
    with back._autocast():
        assert back.model(back._norm(x[:2])).dtype == torch.bfloat16
    _toy_store(tmp_path / "st")
    assert main(["fit", "--artifacts", str(tmp_path / "st"), "--memory-budget", "10KB", "--out", str(tmp_path / "f"),
                 "--device", "cpu"]) == 2
    assert "--memory-budget 10240 bytes is below" in capsys.readouterr().err


def test_adopt_project_output(gm, tmp_path):
    proj, st, built = tmp_path / "proj", tmp_path / "st", tmp_path / "built"
    assert main(["project", "--data", str(gm), "--size", "16", "--out", str(proj)]) == 0
    assert main(["artifacts", "--from-project", str(proj), "--out", str(st)]) == 0
    run_artifacts(gm, "rgb", built, size=16, progress=False, memory_budget=1 << 20)
    a, b = _arrays(st), _arrays(built)
    for name in ARRAYS:
        assert np.array_equal(a[name], b[name]), name
    assert os.path.samefile(st / "artifacts.npy", proj / "artifacts.npy")  # linked, not copied
    assert ArtifactStore(st).models == ["model_a", "model_b"]


# ---- training under a process group (2 gloo ranks on loopback) ---------------------------------------


def _data():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 6, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def _model():
    torch.manual_seed(0)
    # BatchNorm: its statistics must be the global batch's on every rank (distributed.CrossRankBatchNorm),
    # over (N, C) as after a linear layer and over (N, C, H, W) as in the attributor's ResNet
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                               torch.nn.Unflatten(1, (2, 2, 2)), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(8, 3))


def _fit(net, model, ckpt=None, resume=False, stop_at=None, kill_rank=None):
    x, y = _data()
    calls = [0]

    def batch_loss(idx, gen):
        epoch = calls[0] // 5  # 40 samples, batches of 8
        calls[0] += 1
        if stop_at is not None and epoch == stop_at:
            raise KeyboardInterrupt
        if kill_rank is not None and dist.get_rank() == kill_rank and epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return torch.nn.functional.cross_entropy(net(x[idx]), y[idx])

    scored = [0]

    def predict(v):
        model.eval()  # running statistics; train() sets training mode again at the next epoch
        scored[0] += len(v)
        return model(v).argmax(1)

    history, _ = train(net, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), 40, batch_loss,
                       score=accuracy_of(predict, x, y), epochs=4, batch_size=8, seed=0, checkpoint=ckpt, resume=resume,
                       settings={"toy": 1})
    return model.state_dict(), {"val_acc": [h["val_acc"] for h in history], "scored": scored[0]}


def _worker(rank, world, init_file, out_dir, mode, stop_at, resume):
    try:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                                timeout=timedelta(seconds=20))
        model = _model()
        net = torch.nn.parallel.DistributedDataParallel(model) if mode == "ddp" else model
        state, seen = _fit(net, model, ckpt=os.path.join(out_dir, "ckpt.pt"), resume=resume, stop_at=stop_at,
                           kill_rank=1 if mode == "kill" else None)
        torch.save(state, os.path.join(out_dir, f"rank{rank}.pt"))
        torch.save(seen, os.path.join(out_dir, f"rank{rank}-scores.pt"))
        dist.destroy_process_group()
    except BaseException as e:  # noqa: BLE001 - reported to the parent through a file
        with open(os.path.join(out_dir, f"rank{rank}.err"), "w") as f:
            f.write(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")


def _run(folder, mode, stop_at=None, resume=False, world=2):
    folder.mkdir(exist_ok=True)
    for f in folder.glob("rank*"):
        f.unlink()
    init = folder / f"pg-{stop_at}-{resume}"
    run_ranks(_worker, lambda r: (r, world, str(init), str(folder), mode, stop_at, resume), world)
    return {r: (folder / f"rank{r}.err").read_text() if (folder / f"rank{r}.err").exists() else None for r in range(world)}


@pytest.mark.parametrize("mode", ["ddp", "allreduce"])
def test_two_ranks_train_like_one_process(tmp_path, mode):
    errors = _run(tmp_path, mode)
    assert errors == {0: None, 1: None}, errors
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    model = _model()
    one, one_scores = _fit(model, model)  # the same global batches in one process
    for k in one:
        assert torch.equal(r0[k], r1[k]), k  # every rank holds the same model
        # each half's mean loss, averaged, is the batch mean; BatchNorm's statistics (and its running ones) the batch's
        torch.testing.assert_close(r0[k], one[k], rtol=1e-4, atol=1e-5)
    # validation is sharded: each rank scored half of the 40 samples per epoch, and both got one process's accuracy
    s0, s1 = (torch.load(tmp_path / f"rank{r}-scores.pt", weights_only=True) for r in (0, 1))
    assert s0["scored"] == s1["scored"] == one_scores["scored"] // 2 == 4 * 20
    assert s0["val_acc"] == s1["val_acc"]
    # the weights agree to 1e-5, not bit for bit: allow one sample at a near tie
    assert all(abs(a - b) <= 1 / 40 + 1e-12 for a, b in zip(s0["val_acc"], one_scores["val_acc"]))


def test_two_ranks_resume_bit_exactly(tmp_path):
    assert _run(tmp_path / "straight", "ddp") == {0: None, 1: None}
    stopped = _run(tmp_path / "cut", "ddp", stop_at=2)
    assert all(e.startswith("KeyboardInterrupt") for e in stopped.values())
    assert torch.load(tmp_path / "cut" / "ckpt.pt", weights_only=True)["epoch"] == 1
    assert _run(tmp_path / "cut", "ddp", resume=True) == {0: None, 1: None}
    for r in (0, 1):
        a = torch.load(tmp_path / "straight" / f"rank{r}.pt", weights_only=True)
        b = torch.load(tmp_path / "cut" / f"rank{r}.pt", weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_rank_fails_the_others(tmp_path):
    errors = _run(tmp_path, "kill")
    assert errors[1] is None and not (tmp_path / "rank1.pt").exists()  # SIGKILL: no word from rank 1
    assert errors[0].startswith("RuntimeError: manifpt train: rank 0 lost the process group"), errors[0]
