#!/usr/bin/env bash
# Run every graphvision benchmark on a GPU machine in one call (budget: under 5 minutes).
#
#   bash benchmarks/run_gpu.sh            # results to $OUT when set, else benchmarks/results/
#
# Steps (each under its own timeout so one slow step cannot eat the budget):
#   1. environment record (nvidia-smi, versions);
#   2. the Triton kernel tests on the GPU (compiled kernels, 4 hypothesis examples each), capped at 100 s;
#   3. benchmarks/bench_ops.py, full configs, capped at 170 s;
#   4. benchmarks/bench_mutual_information.py when it exists, capped at 50 s.
# Exit status: non-zero when a step failed or timed out (the others still run).
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR="${OUT:-benchmarks/results}"
mkdir -p "$OUTDIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET   # compiled Triton kernels on the GPU
status=0
start=$(date +%s)

python - <<'PY' || { echo "run_gpu.sh: no usable CUDA device"; exit 2; }
import torch
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY
{ nvidia-smi || true; python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"; } \
    > "$OUTDIR/gpu_environment.txt" 2>&1

echo "== 1/3 Triton kernel tests on the GPU"
GRAPHVISION_TRITON_MAX_EXAMPLES=4 timeout 100 python -m pytest tests/ops/test_triton_*.py -q -p no:xdist -p no:cacheprovider -x 2>&1 | tail -n 25 | tee "$OUTDIR/triton_tests_gpu.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "triton tests failed or timed out"; status=1; }

echo "== 2/3 bench_ops.py (full configs)"
timeout 170 python benchmarks/bench_ops.py --out "$OUTDIR" 2>&1 | grep -v USDT | tee "$OUTDIR/bench_ops_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "bench_ops failed or timed out"; status=1; }

if [ -f benchmarks/bench_mutual_information.py ]; then
    echo "== 3/3 bench_mutual_information.py"
    if python benchmarks/bench_mutual_information.py --help 2>/dev/null | grep -q -- "--out"; then
        mi_args=(--out "$OUTDIR")
    else
        mi_args=()
    fi
    timeout 50 python benchmarks/bench_mutual_information.py "${mi_args[@]}" 2>&1 | tee "$OUTDIR/bench_mutual_information_cuda.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "bench_mutual_information failed or timed out"; status=1; }
else
    echo "== 3/3 bench_mutual_information.py not present: skipped"
fi

echo "run_gpu.sh finished in $(( $(date +%s) - start )) s with status $status; results in $OUTDIR"
exit $status
