"""manifpt_ext.distributed.project: reals sharded over 2-3 gloo processes (spawned, loopback only)
equal one single-process project call; an empty shard works; a failing rank makes the others fail
with an error instead of hanging."""
import os
import time
import traceback
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
from helpers import make_pair, run_ranks

from manifpt_ext import distributed, project

M, N, S = 37, 211, (3, 5)


def _data(dtype):
    x, y = make_pair(M, N, S, dtype, seed=5)
    return x, torch.cat([y, y[:40]])  # duplicates: ties across shards


def _worker(rank, world, init_file, out_dir, dtype, bounds, mode):
    try:
        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=15)
        )
        x, y = _data(dtype)
        lo, hi = bounds[rank]
        if mode == "fail" and rank == 1:
            raise RuntimeError("rank 1 fails on purpose")
        r = distributed.project(x, y[lo:hi], all_ranks=(mode == "all"), dst=world - 1 if mode == "dst_last" else 0)
        torch.save(None if r is None else dict(r._asdict()), os.path.join(out_dir, f"rank{rank}.pt"))
        dist.destroy_process_group()
    except BaseException as e:  # noqa: BLE001 - reported to the parent through a file
        with open(os.path.join(out_dir, f"rank{rank}.err"), "w") as f:
            f.write(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")


def _run(tmp_path, world, dtype, bounds, mode):
    start = time.monotonic()
    run_ranks(_worker, lambda r: (r, world, str(tmp_path / "pg"), str(tmp_path), dtype, bounds, mode), world)
    return time.monotonic() - start


@pytest.mark.parametrize(
    "world,dtype,bounds,mode",
    [
        (2, torch.float32, [(0, 100), (100, 251)], "dst0"),
        (3, torch.float64, [(0, 90), (90, 90), (90, 251)], "all"),  # rank 1 holds an empty shard
        (3, torch.float16, [(0, 17), (17, 200), (200, 251)], "dst_last"),
    ],
    ids=["2proc-f32", "3proc-f64-empty-shard-all-ranks", "3proc-f16-dst-last"],
)
def test_sharded_equals_single_process(tmp_path, world, dtype, bounds, mode):
    _run(tmp_path, world, dtype, bounds, mode)
    errors = sorted(tmp_path.glob("*.err"))
    assert not errors, errors[0].read_text()
    x, y = _data(dtype)
    one = project(x, y)
    receivers = range(world) if mode == "all" else [world - 1 if mode == "dst_last" else 0]
    for r in range(world):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        if r not in receivers:
            assert got is None
            continue
        assert torch.equal(got["index"], one.index)
        assert torch.equal(got["artifact"].reshape(-1).view(torch.int8), one.artifact.reshape(-1).view(torch.int8))
        assert torch.equal(got["distance"], one.distance)


def test_failing_rank_makes_the_others_fail_not_hang(tmp_path):
    elapsed = _run(tmp_path, 3, torch.float32, [(0, 80), (80, 160), (160, 251)], "fail")
    assert "rank 1 fails on purpose" in (tmp_path / "rank1.err").read_text()
    for r in (0, 2):
        err = tmp_path / f"rank{r}.err"
        assert err.exists(), f"rank {r} finished although rank 1 died"
        assert err.read_text().strip()
    assert elapsed < 100


def test_requires_initialised_process_group():
    x, y = make_pair(3, 5, (2,))
    with pytest.raises(RuntimeError, match="not initialised"):
        distributed.project(x, y)


def test_shard_bounds_cover_without_gaps():
    for n in (0, 1, 7, 100):
        for world in (1, 2, 3, 8):
            b = [distributed.shard_bounds(n, r, world) for r in range(world)]
            assert b[0][0] == 0 and b[-1][1] == n
            assert all(b[i][1] == b[i + 1][0] for i in range(world - 1))
