"""The backends' on-disk Numba cache never loads code compiled from other
sources (streamlstm/backends/cache.py).

Numba stamps a cached function with its own file only, so a kernel that
inlines a helper from another module would load stale after the helper is
edited.  The test works on a copy of the package in a temporary directory:
it compiles a small probe kernel that calls cellmath.sigmoid, edits the copy's
cellmath.py, and checks in fresh processes that the probe (defined under
backends/, cached by cached_njit) recompiles and computes the new number,
while a plain ``njit(cache=True)`` control outside backends/ loads stale - the
failure mode this guards against - and one outside backends/ declared with
``stamp_with`` (forecast/combined.py's way) recompiles.
"""
import ast
import json
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BACKENDS = ROOT / "streamlstm" / "backends"

PROBE = '''\
from streamlstm.backends.cache import cached_njit
from streamlstm.backends.cellmath import sigmoid


@cached_njit()
def probe(x):
    return sigmoid(x, 1.0)
'''

CONTROL = '''\
from numba import njit

from streamlstm.backends.cellmath import sigmoid


@njit(cache=True)
def probe(x):
    return sigmoid(x, 1.0)
'''

STAMPED = '''\
import pathlib

from numba import njit

import streamlstm.backends.cellmath as cellmath
from streamlstm.backends.cache import stamp_with
from streamlstm.backends.cellmath import sigmoid

stamp_with(__file__, [__file__, cellmath.__file__])


@njit(cache=True)
def probe(x):
    return sigmoid(x, 1.0)
'''

RUN = '''\
import json

import control_probe
import stamped_probe
from streamlstm.backends.cache import sources_stamp
from streamlstm.backends.cpu.stale_probe import probe

out = {"probe": probe(0.0), "control": control_probe.probe(0.0),
       "probe_hits": sum(probe.stats.cache_hits.values()),
       "control_hits": sum(control_probe.probe.stats.cache_hits.values()),
       "stamped": stamped_probe.probe(0.0),
       "stamped_hits": sum(stamped_probe.probe.stats.cache_hits.values()),
       "stamp": sources_stamp()}
print(json.dumps(out))
'''


def _run(tmp):
    env = dict(os.environ, PYTHONPATH=str(tmp), NUMBA_CACHE_DIR=str(tmp / "numba_cache"))
    env.pop("NUMBA_CACHE_LOCATOR_CLASSES", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    p = subprocess.run([sys.executable, "run_probe.py"], cwd=tmp, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_editing_a_helper_module_recompiles_its_callers(tmp_path):
    shutil.copytree(ROOT / "streamlstm", tmp_path / "streamlstm",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "streamlstm" / "backends" / "cpu" / "stale_probe.py").write_text(PROBE)
    (tmp_path / "control_probe.py").write_text(CONTROL)
    (tmp_path / "stamped_probe.py").write_text(STAMPED)
    (tmp_path / "run_probe.py").write_text(RUN)

    first = _run(tmp_path)                  # compiles and writes the cache
    assert first["probe"] == first["control"] == first["stamped"] == 0.5
    again = _run(tmp_path)                  # same sources: all load from the cache
    assert again["probe_hits"] > 0 and again["control_hits"] > 0, again
    assert again["stamped_hits"] > 0, again
    assert again["stamp"] == first["stamp"]

    cellmath = tmp_path / "streamlstm" / "backends" / "cellmath.py"
    src = cellmath.read_text()
    old = "return one / (one + math.exp(-x))"
    assert src.count(old) == 1
    cellmath.write_text(src.replace(old, "return one / (one + math.exp(-x)) + one + one"))

    edited = _run(tmp_path)
    assert edited["stamp"] != first["stamp"]
    assert edited["probe"] == 2.5 and edited["probe_hits"] == 0, \
        f"a backend kernel loaded code compiled from the old cellmath.py: {edited}"
    # outside backends/, a function stamped with the files it compiles in
    # (forecast/combined.py's way) recompiles too
    assert edited["stamped"] == 2.5 and edited["stamped_hits"] == 0, edited
    # The premise: Numba's own cache, keyed on the caller's file alone, loads
    # stale here.  (If this starts failing, Numba now tracks the helpers itself.)
    assert edited["control"] == 0.5 and edited["control_hits"] > 0, edited


def _passes_cache_true(tree):
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.keyword) and node.arg == "cache"
            and isinstance(node.value, ast.Constant) and node.value.value is True]


def test_backend_functions_are_cached_through_cached_njit():
    """Every cached backend function is decorated by cached_njit, so cache.py
    (and its locator) is surely in place before Numba looks for its cache."""
    bad = []
    for path in sorted(BACKENDS.rglob("*.py")):
        if path.name == "cache.py":
            continue
        for line in _passes_cache_true(ast.parse(path.read_text())):
            bad.append(f"{path.relative_to(BACKENDS)}:{line} passes cache=True: use "
                       f"streamlstm.backends.cache.cached_njit")
    assert not bad, "\n".join(bad)


def test_stamp_covers_every_backend_source():
    from streamlstm.backends.cache import source_files
    files = set(source_files())
    assert set(BACKENDS.rglob("*.py")) <= files
    assert ROOT / "streamlstm" / "core" / "optim.py" in files
