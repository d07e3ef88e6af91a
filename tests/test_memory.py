"""The M x N distance matrix is never materialised: peak RSS of a projection stays within
inputs + outputs + a tile budget, measured in a fresh process."""
import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, resource, torch, manifpt_ext
    m, n, d = 4000, 100000, 16
    x = torch.randn(m, d); y = torch.randn(n, d)
    manifpt_ext.project(x[:2], y[:10])  # load everything (libraries, thread pool) first
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    p = manifpt_ext.project(x, y)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"base": base, "peak": peak, "outputs": p.artifact.nbytes + p.index.nbytes + p.distance.nbytes}))
    """
)


def test_peak_memory_is_o_tile():
    out = subprocess.run([sys.executable, "-c", SCRIPT], check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    extra = r["peak"] - r["base"]
    matrix = 4000 * 100000 * 4  # what a materialised float32 distance matrix would need: 1.6 GB
    assert extra <= r["outputs"] + 64 * 2**20, f"grew by {extra / 2**20:.1f} MiB (matrix would be {matrix / 2**20:.0f} MiB)"
