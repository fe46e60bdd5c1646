"""Compiled code saved by one process and linked into a caller compiled by another
computes what it computed where it was compiled.

Numba names each compiled function by its module, qualname, argument types and
flags, plus a number that counts the compiles of the process (its "uid").  A
caller links copies of its callees' IR, and LLVM keeps one definition per name.
So two *different* functions that share everything but that number - two
lambdas made by one factory, say - are told apart only within the process that
numbered them: a callee loaded from the on-disk cache brings another process's
numbering, and where its number of one function is this process's number of the
other, one of them silently runs the other's code.  streamlstm/backends/cpu/simd.py
made its four Vec operators that way (a GRU's update then subtracted by adding,
in CI); each now has a qualname of its own.
"""
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from streamlstm.backends import link_only

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UID = re.compile(r"B\d+v(\d+)(?=[BE])")     # Numba's mangling of the uid, an ABI tag "v<uid>"

# Two Vec operators in two cached functions: sub_lanes (INNER, saved as IR) and
# entry, which adds and calls sub_lanes.
_MODULE = """
from streamlstm.backends.specialize import INNER, njit
from streamlstm.backends.cpu.simd import vload, vstore

@njit(cache=True, **INNER)
def sub_lanes(x, y, out):
    vstore(out, 0, vload(x, 0) - vload(y, 0))

@njit(cache=True)
def make_sub(x, y, out):
    sub_lanes(x, y, out)

@njit(cache=True)
def entry(x, y, out_add, out_sub):
    vstore(out_add, 0, vload(x, 0) + vload(y, 0))
    sub_lanes(x, y, out_sub)
"""

# A compiles and saves sub_lanes and says which uid its Vec subtraction took;
# B numbers its own compiles so that its Vec addition takes that uid, then
# compiles entry around the sub_lanes it loads from the cache.
_CHILD = r"""
import itertools, json, re, sys
import numpy as np
from numba.core import bytecode
import mod_vec
UID = re.compile(r"B\d+v(\d+)(?=[BE])")
x, y = np.arange(8.0) + 10.0, np.ones(8)
add, sub = np.zeros(8), np.zeros(8)

def impl_uids(lib):
    # the uids of the simd module's functions a library defines
    return sorted({int(UID.search(f.name).group(1)) for f in lib._get_module_for_linking().functions
                   if not f.is_declaration and "4simd" in f.name and UID.search(f.name)})

if sys.argv[1] == "A":
    mod_vec.make_sub(x, y, sub)
    lib = next(iter(mod_vec.sub_lanes.overloads.values())).library
    print(json.dumps({"sub_uid": impl_uids(lib), "sub": sub.tolist()}))
else:
    bytecode.FunctionIdentity._unique_ids = itertools.count(int(sys.argv[2]) - 1)
    mod_vec.entry(x, y, add, sub)
    lib = next(iter(mod_vec.entry.overloads.values())).library
    own = [l for l in lib._linking_libraries if l.name not in ("sub_lanes", "nrt")]
    print(json.dumps({"add_uid": sorted(u for l in own for u in impl_uids(l)),
                      "loaded": mod_vec.sub_lanes.stats.cache_hits and
                                sum(mod_vec.sub_lanes.stats.cache_hits.values()),
                      "add": add.tolist(), "sub": sub.tolist()}))
"""


def _child(tmp_path, *args):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT, os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True,
                         env=env, cwd=str(tmp_path), timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not link_only.ENABLED, reason="STREAMLSTM_EMIT_INNER is set")
def test_a_cached_callee_keeps_its_operators_whatever_this_process_numbers_them(tmp_path):
    (tmp_path / "mod_vec.py").write_text(textwrap.dedent(_MODULE))
    a = _child(tmp_path, "A")
    assert a["sub"] == [9.0 + i for i in range(8)] and len(a["sub_uid"]) == 1
    b = _child(tmp_path, "B", str(a["sub_uid"][0]))
    # the setting this test is about: sub_lanes came from A's cache, and B's
    # addition took the uid of A's subtraction
    assert b["loaded"] >= 1
    assert b["add_uid"] == a["sub_uid"]
    assert b["add"] == [11.0 + i for i in range(8)]
    assert b["sub"] == [9.0 + i for i in range(8)]


# From an empty cache, in one process: the CPU backend's entry points (a GRU and
# an LSTM share them: the cell is a run-time setting) and a River forecaster's
# one-value calls.  Every Python function Numba compiles is recorded with its
# uid; then every symbol linked into the package's compiled functions is grouped
# by its name less the uid, and each group's functions are fingerprinted (code,
# constants, closure).  One name for two fingerprints is two different functions
# the on-disk cache can mix up (module doc) - the package's or Numba's own.
_SCAN = r"""
import collections, importlib, json, pkgutil, re
import numpy as np
from numba.core import bytecode
from numba.core.registry import CPUDispatcher
_FROM = bytecode.FunctionIdentity.from_function.__func__
FUNCS = {}

def from_function(cls, pyfunc):
    fi = _FROM(cls, pyfunc)
    FUNCS[fi.unique_id] = pyfunc
    return fi

bytecode.FunctionIdentity.from_function = classmethod(from_function)
import streamlstm
UID = re.compile(r"B\d+v(\d+)(?=[BE])")
for cell in ("lstm", "gru"):
    net = streamlstm.OnlineRNN(2, 3, 1, n_series=2, cell=cell, n_layers=2, k1=2, k2=2,
                               backend="cpu", seed=0)
    rng = np.random.default_rng(0)
    net.run(rng.normal(size=(4, 2, 2)), rng.normal(size=(4, 2, 1)))
    net.predict(rng.normal(size=(2, 2)))
model = streamlstm.LSTMForecaster()
for t in range(4):
    model.learn_one(float(t))
    model.forecast(2)

def fingerprint(f):
    code = f.__code__
    return repr((code.co_code, code.co_consts, [c.cell_contents for c in f.__closure__ or ()]))

groups, seen = collections.defaultdict(set), set()

def walk(lib):
    if id(lib) in seen:
        return
    seen.add(id(lib))
    for fn in lib._get_module_for_linking().functions:
        m = UID.search(fn.name)
        if not fn.is_declaration and m and not fn.name.startswith(("cpython.", "cfunc.")):
            groups[UID.sub("", fn.name, count=1)].add(fingerprint(FUNCS[int(m.group(1))]))
    for callee in lib._linking_libraries:
        walk(callee)

n = 0
for info in pkgutil.walk_packages(streamlstm.__path__, "streamlstm."):
    if ".cuda" in info.name or info.name.endswith("__main__"):
        continue
    for obj in list(vars(importlib.import_module(info.name)).values()):
        if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == info.name:
            for cres in obj.overloads.values():
                n += 1
                walk(cres.library)
print(json.dumps({"entries": n, "names": {k: len(v) for k, v in groups.items()}}))
"""


def test_no_two_compiled_functions_share_a_name_but_the_uid(tmp_path):
    """Every symbol linked into the package's compiled functions names one
    function, whatever the compile's number (module doc)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), STREAMLSTM_COMPILE_PROCESSES="1",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", _SCAN], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    names = out["names"]
    # what was scanned: the backend's and the forecast layer's compiled code,
    # the Vec operators and Numba's own helpers among it
    assert out["entries"] >= 10 and len(names) > 100
    for part in ("4simd", "8backward", "6onerow", "7experts", "5numba"):
        assert any(part in n for n in names), part
    shared = {n: k for n, k in names.items() if k > 1}
    assert not shared, shared
