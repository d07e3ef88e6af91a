"""The CUDA emulation's own checks: the race check (the project's kernels under ThreadSanitizer, and the
proof that it fails on a missing barrier), its reports of deadlocks and refused launches, and the
compiled cubins' resource usage (no local memory).

The race check is a small C++ program (csrc/testing/race_check.cpp) built here with -fsanitize=thread
and cached under build/race-check/<hash of the sources and compiler> (MANIFPT_RACE_CHECK_CACHE
overrides), so a rerun costs only the runs. Without a working ThreadSanitizer toolchain these tests
skip, unless MANIFPT_REQUIRE_RACE_CHECK=1 (set by .ci/run), where they fail.
"""
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import manifpt_ext

REPO = Path(__file__).resolve().parents[1]
CSRC = REPO / "csrc"
# What the race check compiles: the emulation, the device code, and the driver.
SOURCE_DIRS = ("common", "ops/project", "testing")
REQUIRED = os.environ.get("MANIFPT_REQUIRE_RACE_CHECK") == "1"
TSAN_REPORT = "WARNING: ThreadSanitizer"


def _unavailable(reason):
    if REQUIRED:
        pytest.fail(f"MANIFPT_REQUIRE_RACE_CHECK=1 but {reason}")
    pytest.skip(reason)


# The emulation itself is not instrumented (TSAN would report its bookkeeping); it annotates instead.
EMU_FLAGS = ["-std=c++20", "-O2", "-g"]
CHECK_FLAGS = ["-std=c++20", "-O1", "-g", "-fsanitize=thread", "-Wno-unknown-pragmas", "-ffp-contract=off"]


def _compile(cxx, root, out_dir):
    """Builds race_check from the sources under `root` (a csrc tree) into out_dir; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    emu_obj, binary = out_dir / "cuda_emu.o", out_dir / "race_check"
    steps = [
        [cxx, *EMU_FLAGS, f"-I{root}", "-c", str(root / "testing" / "cuda_emu.cpp"), "-o", str(emu_obj)],
        [cxx, *CHECK_FLAGS, f"-I{root}", str(root / "testing" / "race_check.cpp"), str(emu_obj), "-o", str(binary) + ".tmp"],
    ]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            if "tsan" in r.stderr.lower() and ("cannot find" in r.stderr or "not found" in r.stderr):
                _unavailable(f"the ThreadSanitizer runtime is missing: {r.stderr.strip()[-300:]}")
            raise AssertionError(f"race check build failed:\n{' '.join(cmd)}\n{r.stderr}")
    os.replace(str(binary) + ".tmp", binary)
    return binary


def _build(root=CSRC):
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        _unavailable("no C++ compiler (g++) to build the race check")
    h = hashlib.sha256()
    h.update(subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.encode())
    h.update(" ".join(EMU_FLAGS + CHECK_FLAGS).encode())
    for sub in SOURCE_DIRS:
        for f in sorted((root / sub).rglob("*")):
            if f.is_file():
                h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    cache = Path(os.environ.get("MANIFPT_RACE_CHECK_CACHE", REPO / "build" / "race-check"))
    binary = cache / h.hexdigest()[:16] / "race_check"
    return binary if binary.exists() else _compile(cxx, root, binary.parent)


def _run(binary, command):
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=0 exitcode=66 " + os.environ.get("TSAN_OPTIONS", ""))
    cmd = [str(binary), command]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if "FATAL: ThreadSanitizer" in r.stderr and "memory mapping" in r.stderr:
        # Kernels with a large mmap randomisation break TSAN's fixed memory layout; without address
        # space randomisation it works.
        r = subprocess.run(["setarch", platform.machine(), "-R", *cmd], capture_output=True, text=True, timeout=600, env=env)
    if "FATAL: ThreadSanitizer" in r.stderr:
        _unavailable(f"ThreadSanitizer cannot run here: {r.stderr.strip()[-300:]}")
    return r


@pytest.fixture(scope="session")
def race_check():
    if not sys.platform.startswith("linux"):
        _unavailable("the race check runs on Linux")
    return _build()


def test_race_check_of_the_project_kernels(race_check):
    r = _run(race_check, "kernels")
    assert TSAN_REPORT not in r.stderr, r.stderr[-6000:]
    assert r.returncode == 0 and "race_check kernels: ok" in r.stdout, r.stdout + r.stderr[-3000:]
    assert "(under ThreadSanitizer)" in r.stdout


def test_race_check_reports_a_planted_race(race_check):
    # The proof that the check can fail: a tiny kernel that reads its neighbour's shared-memory slot
    # without the __syncthreads between the write and the read.
    r = _run(race_check, "planted")
    assert r.returncode == 66 and "ThreadSanitizer: data race" in r.stderr, r.stdout + r.stderr[-3000:]
    assert "planted_kernel" in r.stderr and "CUDA thread (" in r.stderr  # the racing threads are named
    r = _run(race_check, "planted-fixed")
    assert r.returncode == 0 and TSAN_REPORT not in r.stderr, r.stderr[-3000:]


def test_race_check_reports_a_barrier_removed_from_the_project_kernel(tmp_path):
    # Same kernel source, minus the __syncthreads after the inner-product loop: the next step's staging
    # then overwrites tiles other threads still read.
    root = tmp_path / "csrc"
    for sub in SOURCE_DIRS:
        shutil.copytree(CSRC / sub, root / sub)
    kernel = root / "ops" / "project" / "project_kernels.cuh"
    src = kernel.read_text()
    pattern = r"(acc\[1\]\[1\] = fma\(d, d, acc\[1\]\[1\]\);\s*\}\s*)__syncthreads\(\);"
    mutated, count = re.subn(pattern, r"\1/* barrier removed by the test */", src)
    assert count == 1, "the barrier after the inner-product loop was not found: update this test with the kernel"
    kernel.write_text(mutated)
    r = _run(_build(root), "kernels")
    assert r.returncode != 0 and "ThreadSanitizer: data race" in r.stderr, r.stdout + r.stderr[-3000:]
    assert "project_direct_kernel" in r.stderr


@pytest.mark.parametrize(
    "pattern,what",
    [
        # The barrier between the K loop's mma and the next step's staging of the same tiles.
        (r"(wmma::mma_sync\(acc\[a\]\[b\], fa\[a\], fb\[b\], acc\[a\]\[b\]\);\s*\}\s*)__syncthreads\(\);", "staging"),
        # The barrier between store_matrix_sync and the scan: each lane stores only its own accumulator
        # elements (as on the device), so the scanning threads read other lanes' stores unordered.
        (r"(wmma::mem_row_major\);\s*)__syncthreads\(\);", "store"),
    ],
)
def test_race_check_reports_a_barrier_removed_from_the_mma_kernel(tmp_path, pattern, what):
    root = tmp_path / "csrc"
    for sub in SOURCE_DIRS:
        shutil.copytree(CSRC / sub, root / sub)
    kernel = root / "ops" / "project" / "cuda" / "mma.cuh"
    mutated, count = re.subn(pattern, r"\1/* barrier removed by the test */", kernel.read_text())
    assert count == 1, f"the {what} barrier was not found: update this test with the kernel"
    kernel.write_text(mutated)
    r = _run(_build(root), "kernels")
    assert r.returncode != 0 and "ThreadSanitizer: data race" in r.stderr, r.stdout + r.stderr[-3000:]
    assert "project_mma_kernel" in r.stderr


@pytest.mark.parametrize(
    "command,message",
    [
        ("deadlock-barrier", "exits while 16 thread"),
        ("deadlock-warp", r"deadlock in block \(0, 0, 0\).*lane 5 waits at __syncthreads"),
    ],
)
def test_emulation_reports_what_would_hang_a_gpu(race_check, command, message):
    r = _run(race_check, command)
    assert r.returncode == 3 and re.search(message, r.stdout, re.S), r.stdout + r.stderr[-3000:]
    assert TSAN_REPORT not in r.stderr, r.stderr[-3000:]


def test_emulation_refuses_what_cuda_refuses(race_check):
    r = _run(race_check, "limits")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert r.stdout.count("invalid configuration argument") == 3 and r.stdout.count("invalid argument (") == 2, r.stdout


# ---- the compiled cubins --------------------------------------------------------------------------------


def _find_cuobjdump():
    found = shutil.which("cuobjdump")
    if found:
        return found
    for base in map(Path, sys.path):  # the pip package nvidia-cuda-cuobjdump: nvidia/cu13/bin/cuobjdump
        for candidate in base.glob("nvidia/*/bin/cuobjdump"):
            return str(candidate)
    nvcc = shutil.which("nvcc")
    if nvcc and (Path(nvcc).parent / "cuobjdump").exists():
        return str(Path(nvcc).parent / "cuobjdump")
    return None


def _resource_usage(tool, so):
    out = subprocess.run([tool, "--dump-resource-usage", so], capture_output=True, text=True, check=True).stdout
    rows, arch, name = [], None, None
    for line in out.splitlines():
        if m := re.match(r"\s*arch = sm_(\d+)", line):
            arch = int(m.group(1))
        elif m := re.match(r"\s*Function (\S+):", line):
            name = m.group(1)
        elif name and "REG:" in line:
            usage = {k: int(v) for k, v in re.findall(r"(\w+):(\d+)", line)}
            rows.append((arch, name, usage))
            name = None
    return rows


def _demangle(names):
    cxxfilt = shutil.which("c++filt")
    if not cxxfilt:
        return list(names)
    out = subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return out if len(out) == len(names) else list(names)


def _short(name):
    """The demangled kernel name without namespaces and parameter list: `void project_mma_kernel<exact,
    float>` (template arguments such as `(Precision)0` keep their parentheses)."""
    name = re.sub(r"manifpt::cuda::(device_nvcc::)?", "", name)
    if name.endswith(")"):  # drop the trailing, balanced parameter list
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    return name.replace("(Precision)0", "exact").replace("(Precision)1", "tf32").replace("(Precision)2", "bf16")


def test_cubins_use_no_local_memory(capsys, record_property):
    if not manifpt_ext.cuda_available():
        pytest.skip("this build has no CUDA kernels (no nvcc, or a CPU-only torch)")
    tool = _find_cuobjdump()
    if tool is None:
        pytest.skip("no cuobjdump (pip install nvidia-cuda-cuobjdump)")
    rows = _resource_usage(tool, manifpt_ext._C.__file__)
    assert rows, "cuobjdump found no kernels in the built _C"
    names = _demangle([n for _, n, _ in rows])
    table = ["| arch | kernel | registers | shared (bytes) | stack | local |", "|---|---|---|---|---|---|"]
    for (arch, _, u), name in sorted(zip(rows, names), key=lambda r: (r[0][0], _short(r[1]))):
        table.append(f"| sm_{arch} | `{_short(name)}` | {u['REG']} | {u['SHARED']} | {u['STACK']} | {u['LOCAL']} |")
    with capsys.disabled():
        print("\ncuobjdump --dump-resource-usage of", manifpt_ext._C.__file__, "\n" + "\n".join(table))
    record_property("cubin_resource_usage", "\n".join(table))
    spills = [(a, _short(n), u["LOCAL"]) for (a, _, u), n in zip(rows, names) if u.get("LOCAL", 0) != 0]
    assert not spills, f"kernels use local memory (register spills or local arrays): {spills}"
    # Spills of ABI-compiled code go to the stack frame: the projection kernels have none.
    stacks = [(a, _short(n), u["STACK"]) for (a, _, u), n in zip(rows, names) if "project" in n and u.get("STACK", 0) != 0]
    assert not stacks, f"projection kernels use a stack frame (register spills): {stacks}"
    # The static shared memory the launchers declare (project_direct_static_smem, kProbe*Static: the
    # emulation's launch checks count it) is what the cubins have; sm_90 cubins count the 1 KB the
    # system reserves per block on top (measured).
    reserved = {80: 0, 90: 1024}
    declared = {
        "void project_direct_kernel<float, float>": 4 * (16 * 32 * 2 + 32) + 8 * 32,
        "void project_direct_kernel<__half, float>": 4 * (16 * 32 * 2 + 32) + 8 * 32,
        "void project_direct_kernel<__nv_bfloat16, float>": 4 * (16 * 32 * 2 + 32) + 8 * 32,
        "void project_direct_kernel<double, double>": 8 * (16 * 32 * 2 + 32) + 8 * 32,
        "probe_shared_kernel": 16,
        "probe_warp_kernel": 8 * 64,
    }
    arches = {a for a, _, _ in rows}
    for kernel, static in declared.items():
        found = [(a, u) for (a, _, u), n in zip(rows, names) if _short(n) == kernel]
        assert len(found) == len(arches), f"{kernel}: expected one per arch {sorted(arches)}, found {len(found)}"
        for arch, u in found:
            if arch in reserved:
                assert u["SHARED"] - reserved[arch] == static, (arch, kernel, u)


def _find_nvdisasm(cuobjdump):
    """cuobjdump --dump-sass needs nvdisasm: on PATH, next to cuobjdump, or the copy triton ships."""
    found = shutil.which("nvdisasm") or (str(Path(cuobjdump).parent / "nvdisasm") if (Path(cuobjdump).parent / "nvdisasm").exists() else None)
    if found:
        return found
    for base in map(Path, sys.path):
        for candidate in base.glob("triton/backends/nvidia/bin/nvdisasm"):
            return str(candidate)
    return None


def _sass_functions(tool, nvdisasm, so, arch):
    env = dict(os.environ, PATH=str(Path(nvdisasm).parent) + os.pathsep + os.environ.get("PATH", ""))
    out = subprocess.run([tool, "--dump-sass", "-arch", f"sm_{arch}", so], capture_output=True, text=True, check=True, env=env).stdout
    funcs, name = {}, None
    for line in out.splitlines():
        if m := re.match(r"\s*Function : (\S+)", line):
            name = m.group(1)
            funcs[name] = []
        elif name and (m := re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?);", line)):
            funcs[name].append((int(m.group(1), 16), m.group(2)))
    return funcs


def _in_loop(instrs, opcode):
    """Addresses of `opcode` that lie inside a backward branch's range (a loop body)."""
    loops = []
    for addr, text in instrs:
        if m := re.search(r"\bBRA\b.*?(0x[0-9a-f]+)", text):
            target = int(m.group(1), 16)
            if target < addr:
                loops.append((target, addr))
    return [a for a, t in instrs if opcode in t and any(lo <= a <= hi for lo, hi in loops)]


def test_fast_kernel_sass_runs_tensor_cores_in_its_main_loop(capsys):
    # sm_90 SASS of project_mma_kernel: DMMA (exact) or HMMA (tf32, bf16) inside a loop, and no
    # local-memory loads or stores (spills) anywhere in the kernel.
    if not manifpt_ext.cuda_available():
        pytest.skip("this build has no CUDA kernels (no nvcc, or a CPU-only torch)")
    tool = _find_cuobjdump()
    if tool is None:
        pytest.skip("no cuobjdump (pip install nvidia-cuda-cuobjdump)")
    nvdisasm = _find_nvdisasm(tool)
    if nvdisasm is None:
        pytest.skip("no nvdisasm (cuobjdump needs it for --dump-sass)")
    arches = {a for a, _, _ in _resource_usage(tool, manifpt_ext._C.__file__)}
    assert 90 in arches, f"the build has no sm_90 cubin (arches {sorted(arches)}): CMakeLists must build sm_90"
    funcs = _sass_functions(tool, nvdisasm, manifpt_ext._C.__file__, 90)
    want = {"PrecisionE0E": "DMMA.8x8x4", "PrecisionE1E": "HMMA.1684.F32.TF32", "PrecisionE2E": "HMMA.16816.F32.BF16"}
    seen, lines = 0, []
    for name, instrs in funcs.items():
        if "project_mma_kernel" not in name:
            continue
        (opcode,) = [op for key, op in want.items() if key in name]
        looped = _in_loop(instrs, opcode)
        local = [t for _, t in instrs if re.match(r"(STL|LDL)\b", t)]
        lines.append(f"{_short(_demangle([name])[0])}: {len(instrs)} instructions, {sum(opcode in t for _, t in instrs)} {opcode} "
                     f"({len(looped)} in a loop), {len(local)} local loads/stores")
        assert looped, f"{name}: no {opcode} inside a loop"
        assert not local, f"{name}: spills {local[:4]}"
        seen += 1
    with capsys.disabled():
        print("\nsm_90 SASS of the fast kernels:\n" + "\n".join(lines))
    assert seen == 12, f"expected project_mma_kernel for 3 precisions x 4 dtypes, found {seen}"
