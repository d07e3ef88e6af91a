"""Scale-out figures of merit (docs/scale.md), as pytest-benchmark tests:
- project_stream over a memory-mapped .npy file of reals with a memory budget, against project on the
  same reals held in RAM (time ratio), plus the peak RSS of the stream in a fresh process;
- `manifpt project` under torchrun with 2 gloo ranks against one process (identical outputs, time ratio).
Small sizes by default (CI); `--preset full` gives the issue's sizes: (200000, 2048) float32 reals
(1.6 GB file) with a 256 MB budget.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import manifpt_ext
from manifpt.bench import stream_rss_probe, time_min

SIZES = {"small": dict(m=200, n=20000, d=256, budget=4 << 20), "full": dict(m=1000, n=200000, d=2048, budget=256 << 20)}
SIZES["demo"] = SIZES["small"]


@pytest.fixture(scope="module")
def reals_file(request, tmp_path_factory):
    s = SIZES[request.config.getoption("--preset")]
    path = tmp_path_factory.mktemp("scale") / "reals.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(s["n"], s["d"]))
    g = np.random.default_rng(0)
    for start in range(0, s["n"], 8192):  # written in blocks: never the whole array in memory
        mm[start : start + 8192] = g.standard_normal((min(8192, s["n"] - start), s["d"]), dtype=np.float32)
    mm.flush()
    del mm
    return path, s


def test_stream_memmap_vs_in_ram(benchmark, reals_file):
    path, s = reals_file
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((s["m"], s["d"]), dtype=np.float32))
    in_ram = torch.from_numpy(np.load(path))
    one = manifpt_ext.project(x, in_ram)
    streamed = manifpt_ext.project_stream(x, path, memory_budget=s["budget"])
    assert torch.equal(streamed.index, one.index) and torch.equal(streamed.artifact, one.artifact)
    t_ram = time_min(lambda: manifpt_ext.project(x, in_ram), 2)
    in_ram = None  # free the 1.6 GB before streaming
    benchmark.pedantic(manifpt_ext.project_stream, args=(x, path), kwargs={"memory_budget": s["budget"]}, rounds=2)
    t_stream = benchmark.stats.stats.min
    rss = stream_rss_probe(str(path), s["m"], s["d"], s["budget"])
    benchmark.extra_info.update(
        {**s, "file_mib": os.path.getsize(path) / 2**20, "in_ram_s": t_ram, "stream_s": t_stream,
         "stream_over_in_ram": t_stream / t_ram, "rss": rss}
    )


def test_torchrun_two_ranks_vs_one(benchmark, reals_file, tmp_path):
    path, s = reals_file
    fakes = tmp_path / "fakes.npy"
    np.save(fakes, np.random.default_rng(2).standard_normal((s["m"], s["d"]), dtype=np.float32))

    def cli(nproc, out):
        pre = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m"] if nproc > 1 else [sys.executable, "-m"]
        cmd = pre + ["manifpt.cli", "project", "--fakes", str(fakes), "--reals", str(path), "--out", str(out),
                     "--memory-budget-mb", str(s["budget"] >> 20)]
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
        assert res.returncode == 0, res.stderr[-3000:]
        return json.loads((out / "manifest.json").read_text())["seconds"]

    t1 = cli(1, tmp_path / "one")
    t2 = benchmark.pedantic(cli, args=(2, tmp_path / "two"), rounds=1)
    for name in ("index.npy", "artifacts.npy", "distance.npy"):
        assert np.array_equal(np.load(tmp_path / "one" / name), np.load(tmp_path / "two" / name))
    benchmark.extra_info.update({**s, "one_process_s": t1, "two_ranks_s": t2, "two_ranks_over_one": t2 / t1})
