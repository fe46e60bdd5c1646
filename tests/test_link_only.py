"""Functions compiled INNER get no machine code of their own: their optimized IR
is linked into their callers, and cached as that IR alone
(streamlstm/backends/link_only.py)."""
import json
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from numba.core import types

from streamlstm.backends import link_only, specialize
from streamlstm.backends.specialize import INNER

pytestmark = pytest.mark.skipif(not link_only.ENABLED, reason="STREAMLSTM_EMIT_INNER is set")


def _engine(cres):
    return cres.library.codegen._engine


def _scaled_sum(a, k):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * k
    return s


def test_an_inner_function_is_linked_into_its_caller_but_never_emitted():
    inner = specialize.njit(**INNER)(_scaled_sum)

    @specialize.njit()
    def entry(a):
        return inner(a, 3.0) + 1.0

    sig = (types.float64[::1], types.float64)
    inner.compile(sig)
    cres = inner.overloads[sig]
    assert link_only.is_link_only(cres.library)
    # its symbol is in no module of the JIT: nothing of it was emitted ...
    assert not _engine(cres).is_symbol_defined(cres.fndesc.mangled_name)
    # ... until a caller's library, which holds a copy, is
    a = np.arange(5.0)
    assert entry(a) == 3.0 * a.sum() + 1.0
    ecres = entry.overloads[entry.signatures[0]]
    assert not link_only.is_link_only(ecres.library)
    assert _engine(ecres).is_symbol_defined(ecres.fndesc.mangled_name)
    # a plain numba.njit function is compiled as Numba does
    plain = numba.njit(_scaled_sum)
    assert plain(a, 2.0) == 2.0 * a.sum()
    assert not link_only.is_link_only(plain.overloads[plain.signatures[0]].library)


MODULE = '''
from streamlstm.backends.specialize import INNER, njit

@njit(cache=True, **INNER)
def inner(a, k):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * k
    return s

@njit(cache=True)
def entry1(a):
    return inner(a, 2.0)

@njit(cache=True)
def entry2(a):
    return inner(a, 3.0) - 1.0
'''

PROBE = '''
import json, sys
import numpy as np
from streamlstm.backends import link_only
import linkmod
f = getattr(linkmod, sys.argv[1])
value = f(np.arange(6.0))
inner = linkmod.inner
print(json.dumps({"value": value,
                  "inner_link_only": [link_only.is_link_only(c.library)
                                      for c in inner.overloads.values()],
                  "inner_hits": sum(inner.stats.cache_hits.values()),
                  "inner_misses": sum(inner.stats.cache_misses.values()),
                  "hits": sum(f.stats.cache_hits.values())}))
'''


def _probe(tmp_path, which):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=os.pathsep.join(
        [str(tmp_path)] + [p for p in sys.path if p]))
    env.pop("STREAMLSTM_EMIT_INNER", None)
    p = subprocess.run([sys.executable, "probe.py", which], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_a_cached_inner_function_is_loaded_as_ir_for_a_new_caller(tmp_path):
    (tmp_path / "linkmod.py").write_text(textwrap.dedent(MODULE))
    (tmp_path / "probe.py").write_text(textwrap.dedent(PROBE))
    total = np.arange(6.0).sum()
    # 1: compiles inner (link-only) and entry1, saves both
    out = _probe(tmp_path, "entry1")
    assert out["value"] == 2.0 * total
    assert out["inner_link_only"] == [True] and out["inner_misses"] == 1
    # 2: a new caller links inner loaded from the cache (its IR alone)
    out = _probe(tmp_path, "entry2")
    assert out["value"] == 3.0 * total - 1.0
    assert out["inner_link_only"] == [True]
    assert (out["inner_hits"], out["inner_misses"]) == (1, 0)
    # 3: both callers load from the cache, their callee's code inside: inner is
    # not even loaded
    for which, value in (("entry1", 2.0 * total), ("entry2", 3.0 * total - 1.0)):
        out = _probe(tmp_path, which)
        assert (out["value"], out["hits"]) == (value, 1)
        assert out["inner_link_only"] == [] and out["inner_hits"] == 0


PIPELINES = '''
import json
import numpy as np
from numba.core import config
from numba.core.codegen import JITCPUCodegen
from streamlstm.backends.specialize import INNER, njit

full_levels = []            # the LLVM level of every full module pipeline built
_mpm = JITCPUCodegen._module_pass_manager
def mpm(self, **kw):
    if kw.get("cost") != "cheap":
        full_levels.append(int(kw.get("opt", config.OPT)))
    return _mpm(self, **kw)
JITCPUCodegen._module_pass_manager = mpm

@njit(**INNER)
def inner(a, k):
    for i in range(a.shape[0]):
        a[i] *= k

@njit()
def entry(a):
    inner(a, 3.0)

a = np.arange(8.0)
entry(a)
assert a[7] == 21.0
out = {name: [t[0].split(" on ")[0] for t in f.overloads[f.signatures[0]].library.recorded_timings]
       for name, f in (("inner", inner), ("entry", entry))}
out["full_levels"] = full_levels
print(json.dumps(out))
'''


def _pipelines(**settings):
    """The module pipelines PIPELINES' two libraries ran, under these settings."""
    env = dict(os.environ, NUMBA_LLVM_PASS_TIMINGS="1")
    for name, value in settings.items():
        env.pop(name, None)
        if value:
            env[name] = value
    p = subprocess.run([sys.executable, "-c", PIPELINES], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


CHEAP, FULL = "Module passes (cheap optimization for refprune)", "Module passes (full optimization)"


@pytest.mark.parametrize("setting, inner_full", [(None, False), ("full", True), ("Cheap", False)])
def test_an_inner_library_gets_numbas_cheap_module_pipeline_only(setting, inner_full):
    passes = _pipelines(STREAMLSTM_INNER_OPT=setting)
    assert CHEAP in passes["inner"] and (FULL in passes["inner"]) == inner_full
    # the caller, which holds the copy that runs, is optimized in full
    assert CHEAP in passes["entry"] and link_only.FULL_O2 in passes["entry"]
    assert passes["full_levels"].count(2) == 1      # the entry point's, at O2


@pytest.mark.parametrize("setting, emit, o2", [(None, None, True), ("2", None, True),
                                               ("3", None, False), (None, "1", False)])
def test_an_entry_point_gets_the_full_pipeline_at_o2_unless_told_o3(setting, emit, o2):
    # STREAMLSTM_EMIT_INNER=1 rules the whole module out: Numba's own O3 too
    passes = _pipelines(STREAMLSTM_ENTRY_OPT=setting, STREAMLSTM_INNER_OPT=None,
                        STREAMLSTM_EMIT_INNER=emit)
    entry = passes["entry"]
    assert CHEAP in entry
    # exactly one full pipeline: LLVM's O2 (link_only.FULL_O2), or Numba's own O3
    assert (link_only.FULL_O2 in entry, FULL in entry) == (o2, not o2)
    assert link_only.FULL_O2 not in passes["inner"] and (FULL in passes["inner"]) == bool(emit)
    # the level that pipeline ran at (Numba's own libraries, its runtime's, run O3)
    assert passes["full_levels"].count(2) == (1 if o2 else 0)


@pytest.mark.parametrize("name, value, hint", [("STREAMLSTM_INNER_OPT", "fulll", "'cheap'"),
                                               ("STREAMLSTM_ENTRY_OPT", "O3", "'3'")])
def test_an_unknown_opt_setting_is_refused_with_what_to_do(name, value, hint):
    env = dict(os.environ, **{name: value})
    p = subprocess.run([sys.executable, "-c", "import streamlstm.backends.link_only"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    assert f"{name}={value!r}" in p.stderr and hint in p.stderr
