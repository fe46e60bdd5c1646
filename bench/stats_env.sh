#!/usr/bin/env bash
# Create the virtualenv of bench/accuracy.py's panel: streamlstm (editable, from this
# checkout) plus the packages that ship the panel's datasets (statsmodels, pmdarima,
# sktime; river comes with streamlstm) and statsforecast for the AutoETS/AutoTheta
# columns.  None of them is a dependency of streamlstm; the test suite never uses
# this environment.  About 600 MB from PyPI.
#
#   bash bench/stats_env.sh                    # creates bench/.venv-stats
#   STATS_VENV=/somewhere bash bench/stats_env.sh
#   bench/.venv-stats/bin/python bench/accuracy.py --panel
set -euo pipefail
cd "$(dirname "$0")"
VENV="${STATS_VENV:-.venv-stats}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# Versions the README table was measured with; newer ones should work too.
"$VENV/bin/python" -m pip install --quiet -e .. \
  "statsmodels==0.15.0" "pmdarima==2.1.1" "sktime==1.2.0" "statsforecast==2.1.1"
"$VENV/bin/python" - <<'PY'
import river, statsforecast, statsmodels, pmdarima, sktime, streamlstm
print(f"streamlstm {streamlstm.__version__}, river {river.__version__}, "
      f"statsforecast {statsforecast.__version__}, statsmodels {statsmodels.__version__}, "
      f"pmdarima {pmdarima.__version__}, sktime {sktime.__version__}")
PY
