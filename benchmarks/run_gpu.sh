#!/usr/bin/env bash
# Run every graphvision benchmark on a GPU machine in one call (budget: under 5 minutes).
#
#   bash benchmarks/run_gpu.sh            # results to $OUT when set, else benchmarks/results/
#
# Steps (each under its own timeout so one slow step cannot eat the budget; 280 s in all):
#   1. environment record (nvidia-smi, versions);
#   2. the Triton kernel tests on the GPU (compiled kernels, 4 hypothesis examples each), <= 70 s;
#   3. benchmarks/bench_ops.py, full configs, <= 140 s (it saves after every config, so a
#      timeout still leaves the configs it finished);
#   4. benchmarks/bench_mutual_information.py and benchmarks/bench_layers.py when present, <= 35 s each;
#   5. with TUNE=1 only: benchmarks/tune_triton.py (tuning-constant sweep), <= 150 s.
# Exit status: non-zero when a step failed or timed out (the others still run).
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR="${OUT:-benchmarks/results}"
mkdir -p "$OUTDIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET   # compiled Triton kernels on the GPU
status=0
start=$(date +%s)
marker=$(mktemp)

python - <<'PY' || { echo "run_gpu.sh: no usable CUDA device"; exit 2; }
import torch
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
{ nvidia-smi || true; python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"; } \
    > "$OUTDIR/gpu_environment.txt" 2>&1

# run_step LABEL TIMEOUT LOGFILE CMD...: run with a timeout, keep the log, record failures
run_step() {
    local label=$1 limit=$2 log=$3
    shift 3
    echo "== $label"
    timeout "$limit" "$@" 2>&1 | grep -v '^USDT' | tee "$OUTDIR/$log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        echo "!! $label: exit status $rc$([ "$rc" -eq 124 ] && echo ' (timed out)')" | tee -a "$OUTDIR/$log"
        status=1
    fi
}

GRAPHVISION_TRITON_MAX_EXAMPLES=4 run_step "Triton kernel tests on the GPU" 70 triton_tests_gpu.txt \
    python -m pytest tests/ops/test_triton_*.py -q -p no:xdist -p no:cacheprovider -x
run_step "bench_ops.py (full configs)" 140 bench_ops_cuda.log python benchmarks/bench_ops.py --out "$OUTDIR"
for bench in bench_mutual_information bench_layers; do
    if [ ! -f "benchmarks/$bench.py" ]; then
        echo "== $bench.py not present: skipped"
        continue
    fi
    args=()
    if python "benchmarks/$bench.py" --help 2>/dev/null | grep -q -- "--out"; then
        args=(--out "$OUTDIR")
    fi
    run_step "$bench.py" 35 "${bench}_cuda.log" python "benchmarks/$bench.py" "${args[@]}"
done
if [ "${TUNE:-0}" = "1" ]; then  # optional: sweep the Triton tuning constants (adds ~1-2 minutes)
    run_step "tune_triton.py" 150 tune_triton_cuda.log python benchmarks/tune_triton.py --out "$OUTDIR"
fi
# scripts without --out write to benchmarks/results: copy what they wrote during this run
if [ "$(cd "$OUTDIR" && pwd)" != "$(cd benchmarks/results && pwd)" ]; then
    find benchmarks/results -maxdepth 1 -type f -newer "$marker" -exec cp {} "$OUTDIR"/ \;
fi
rm -f "$marker"

echo "run_gpu.sh finished in $(( $(date +%s) - start )) s with status $status; results in $OUTDIR"
exit $status
