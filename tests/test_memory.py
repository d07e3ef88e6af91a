"""The M x N distance matrix is never materialised: peak RSS of a projection stays within
inputs + outputs + a tile budget, measured in a fresh process."""
from manifpt.bench import peak_rss_of_projection


def test_peak_memory_is_o_tile():
    r = peak_rss_of_projection(4000, 100000, 16)  # a float32 distance matrix would take 1526 MiB
    assert r["growth_mib"] >= r["outputs_mib"] * 0.5, r  # the probe sees the outputs being written
    assert r["beyond_outputs_mib"] <= 64, r
