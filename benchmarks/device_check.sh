#!/usr/bin/env bash
# The device check, one run on the GPU machine (H100/H200, CUDA 13, no registries), in under 7
# minutes: build for sm_90, the ops test suite (every backend, the GPU's included), compute-sanitizer memcheck and racecheck on one small
# case each, then the timing table (benchmarks/device_table.py). Writes device_check.log,
# device_table.md and device_table.json under $OUT (default ./device-check-out).
#
#   bash benchmarks/device_check.sh             # on the GPU machine, from the repository root
#   bash benchmarks/device_check.sh --dry-run   # on a CPU: no build, no sanitizers; the tests and the
#                                               # table run with the CUDA kernels under the emulation
#
# Each step has its own time limit, so a hang in one still leaves the others' results; the exit
# status is that of the first failed step (0 when all passed).
set -u -o pipefail

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
OUT="${OUT:-$PWD/device-check-out}"
mkdir -p "$OUT"
LOG="$OUT/device_check.log"
: >"$LOG"
PY="${PYTHON:-python}"
FIRST_FAIL=0
START=$SECONDS

step() { echo "== [$((SECONDS - START)) s] $*" | tee -a "$LOG"; }
run() {  # run LIMIT_S CMD...: output to the log, status noted
  local limit=$1
  shift
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "   -> exit $rc" | tee -a "$LOG"
  if [[ $rc -ne 0 && $FIRST_FAIL -eq 0 ]]; then FIRST_FAIL=$rc; fi
  return $rc
}

step "machine"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
  "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU', torch.cuda.is_available())"
  command -v nvcc >/dev/null && nvcc --version | tail -2
} >>"$LOG" 2>&1

if [[ $DRY -eq 0 ]]; then
  step "build (TORCH_CUDA_ARCH_LIST=9.0)"
  TORCH_CUDA_ARCH_LIST=9.0 MAKEFLAGS="-j$(nproc)" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    run 240 "$PY" -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps . || {
    step "build failed: see $LOG"
    exit 1
  }
fi

step "the ops suite on the GPU and emulated (tests/test_project.py, _freq, test_cuda_builtins.py)"
run 200 "$PY" -m pytest -q -p no:cacheprovider tests/test_project.py tests/test_project_freq.py tests/test_cuda_builtins.py

if [[ $DRY -eq 0 ]]; then
  SAN="$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)"
  if [[ -n "$SAN" ]]; then
    for tool in memcheck racecheck; do
      step "compute-sanitizer --tool $tool (small case)"
      run 120 "$SAN" --tool "$tool" --error-exitcode 9 "$PY" benchmarks/device_table.py --sanitize-case
    done
  else
    step "compute-sanitizer not found: skipped"
    [[ $FIRST_FAIL -eq 0 ]] && FIRST_FAIL=2
  fi
  step "timing table"
  run 240 "$PY" benchmarks/device_table.py --out "$OUT"
else
  step "timing table (dry run on the CPU)"
  run 240 "$PY" benchmarks/device_table.py --cpu --out "$OUT"
fi

step "done, exit $FIRST_FAIL; results in $OUT"
[[ -f "$OUT/device_table.md" ]] && cat "$OUT/device_table.md"
exit "$FIRST_FAIL"
