#!/usr/bin/env bash
# Create deep-river's own virtualenv for the comparison columns of
# bench/accuracy.py and bench/river_speed.py.  deep-river 0.3.4 pins river<0.26
# and torch<2.6, so it cannot share streamlstm's environment; it is never used
# by the test suite or CI.  About 3-5 GB from PyPI (torch 2.5 + CUDA wheels).
#
#   bash bench/deepriver_env.sh            # creates bench/.venv-deepriver
#   DEEPRIVER_VENV=/somewhere bash bench/deepriver_env.sh
set -euo pipefail
cd "$(dirname "$0")"
VENV="${DEEPRIVER_VENV:-.venv-deepriver}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# deep_river/utils/estimator_checks.py imports pytest at import time but does not declare it.
"$VENV/bin/python" -m pip install --quiet "deep-river==0.3.4" pytest
"$VENV/bin/python" - <<'PY'
import deep_river, river, torch
print(f"deep-river {deep_river.__version__}, river {river.__version__}, torch {torch.__version__}")
PY
