#!/usr/bin/env bash
# Issue 15: every check of the CUDA backend on a real NVIDIA GPU, in one run
# (GPU time is short), each part capped so that a hang cannot eat the rest:
#
#   1. the machine: nvidia-smi, Python, numba / numba-cuda / torch / numpy versions;
#   2. the CUDA test suite WITHOUT the simulator (tests/cuda: compiled kernels
#      against the reference backend) and `bench/cuda.py --check` (float64,
#      1,000 learning steps, <= 1e-9), side by side;
#   3. the CLI end to end: `streamlstm run --backend cuda` against
#      `--backend reference` on examples/sensor.parquet (float64);
#   4. `bench/cuda.py`: N in {10k, 100k, 1M} x H in {32, 128}, float32, with
#      learning, against PyTorch CUDA in the same process, roofline fraction.
#
#   bash bench/cuda_device.sh OUTDIR        # every log lands in OUTDIR
#
# Missing Python packages (river, plotly, confluent-kafka on a bare CUDA image;
# numpy 2.4 where the image has numpy 2.5, which numba-cuda 0.30.4 cannot use:
# it overloads np.row_stack, which numpy 2.5 removed)
# can be installed first from wheels in .whl/ (WHEELS=.whl).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench/out/cuda}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
if [ -n "${WHEELS:-}" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-/tmp/nbcache-streamlstm}"
unset NUMBA_ENABLE_CUDASIM
stamp() { echo "== $(date +%T) $*"; }

stamp machine
{ nvidia-smi; "$PY" -V
  "$PY" -m pip list 2>/dev/null | grep -i -E '^(numba|numba-cuda|llvmlite|numpy|torch|cuda-bindings|cuda-python|river) '
  "$PY" -c "from numba import cuda; print('numba.cuda from', cuda.__file__); cuda.detect()"
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt" | grep -v '^|' | head -30

stamp "tests/cuda (real GPU) and bench/cuda.py --check, side by side"
timeout 240 "$PY" -m pytest -p no:cacheprovider tests/cuda -o addopts="-ra" -q \
  --durations=8 > "$OUT/tests.txt" 2>&1 &
T=$!
timeout 200 "$PY" bench/cuda.py --check > "$OUT/check.txt" 2>&1 &
C=$!
wait $C; echo "check rc=$?"; tail -4 "$OUT/check.txt"
wait $T; echo "tests rc=$?"; tail -15 "$OUT/tests.txt"

stamp "CLI: --backend cuda vs --backend reference"
for b in cuda reference; do
  timeout 90 "$PY" -c "from streamlstm.cli.app import main; main()" run \
    --source examples/sensor.parquet --backend $b --dtype float64 --out "$OUT/cli_$b.parquet" \
    > "$OUT/cli_$b.txt" 2>&1
  echo "cli $b rc=$?"
done
"$PY" - "$OUT" <<'PY' 2>&1 | tee "$OUT/cli_compare.txt"
import sys, numpy as np, pandas as pd
o = sys.argv[1]
a, b = pd.read_parquet(f"{o}/cli_cuda.parquet"), pd.read_parquet(f"{o}/cli_reference.parquet")
num = [c for c in a.columns if a[c].dtype.kind == "f"]
d = max(float(np.nanmax(np.abs(a[c].to_numpy() - b[c].to_numpy()))) for c in num)
print(f"CLI cuda vs reference: {len(a)} rows, columns {num}, max |difference| {d:.3g}")
PY

stamp "bench/cuda.py (speed)"
timeout 260 "$PY" bench/cuda.py > "$OUT/bench.txt" 2>&1
echo "bench rc=$?"; cat "$OUT/bench.txt"
stamp done
