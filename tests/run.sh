#!/usr/bin/env bash
# The one test command (README): the main suite, then the CUDA suite under
# Numba's CPU simulator in its own process (the simulator must be switched on
# before numba.cuda is first imported, so it cannot share a process).
# pytest's exit code 5 ("no tests ran") is a failure here like any other.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest streamlstm tests "$@"
if [ -d tests/cuda ]; then
  NUMBA_ENABLE_CUDASIM=1 python -m pytest -p no:cacheprovider tests/cuda -o addopts="-ra" "$@"
fi
