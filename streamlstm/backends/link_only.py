"""No machine code of their own, and a lighter optimization, for the functions
only compiled code calls.

Numba compiles every ``@njit`` function into a library of its own: LLVM IR,
optimized, then emitted as machine code into its JIT.  A caller links a copy of
each callee's optimized IR into its own library, and optimizes and emits all of
it again.  For a function compiled ``INNER`` (specialize.py: no Python entry
point) its own machine code never runs: what runs is the copy inside the
library of an entry point (``kernels.step_calls``, ``forward.forward_rows``,
the forecast layer's kernels).  Emitting it anyway took 4.6 s of a 50 s
one-process River first run (LLVM's "Finalize object" of the INNER libraries:
bench/README.md, "First run", stop 37).

So for the functions ``specialize.njit`` compiles INNER (and only those:
``register``; the same function under a plain ``numba.njit`` is untouched),
this module makes Numba (0.68)

- finalize their library *link-only*: linked with its callees, but never added
  to the JIT, so never emitted;
- optimize it with the first of the two module pipelines Numba runs on every
  library (its "cheap" one: LLVM's O3 less the SLP vectorizer, run to inline
  callees), not the second (the full O3).  What runs is the copy inside an entry
  point, and the entry point's library runs both pipelines over everything
  linked into it, so the full optimization still happens, once, where it
  counts.  The INNER libraries' full pipeline was 9.3 s of CPU in a one-process
  River first run (32 s of LLVM); the machine code and its results are bit for
  bit the same, and as fast (bench/README.md, "First run", stop 38).
  ``STREAMLSTM_INNER_OPT=full`` runs the full pipeline too (stop 37's code);
- save it to the on-disk cache as that IR alone (kind ``LINK_ONLY``; Numba
  saves object code and IR) and load it back the same way.  Only a caller being
  compiled ever loads it: a cached entry point holds its callees' code;
- skip setting a function's environment pointer where no library in the JIT
  defines it (a link-only function's own).  A nopython function reads its
  environment only to call back into Python (object-mode blocks), which the
  package's compiled code never does; Numba's own guard would raise "missing
  Environment" rather than read a null pointer.

``STREAMLSTM_EMIT_INNER=1`` in the environment keeps Numba's own behaviour
(for comparisons: ``bench/link_only_ab.py``, and to rule this module out).

The package's other functions, its entry points (``specialize.njit`` without
``INNER``: ``register_entry``), run Numba's two module pipelines, the second -
the full optimization, over the entry point and every callee linked into it - at
LLVM's O2 instead of Numba's O3 (``ENTRY_OPT``): 4% less of a first run (0.5 s of
12 s, River and CLI alike, paired: bench/README.md, "First run", stop 44) and
the same speed (``hotpath.py`` and the 10,000-series step, alternated: within
their noise), and the same bits in the check made then (LSTM and GRU
forecasters, ``predict_learn`` of 7 series, a float32 ``step`` of 9 series).
``STREAMLSTM_ENTRY_OPT=3`` runs Numba's own O3, as ``STREAMLSTM_EMIT_INNER=1``
does (it rules out the whole module).  The setting is not part of the
cache's key (as Numba's ``NUMBA_OPT`` is not): a cache built under one serves
the other, so clear it when comparing the two.
"""
import os
import weakref

import llvmlite.binding as ll
# The internals patched (Numba 0.68): the lowering pass that creates a
# function's library; the CPU library's module optimization and its last step of
# finalization (add the module to the JIT, emit it), serialization and function
# lookup; the JIT's environment setter.
from numba.core import config
from numba.core.codegen import CPUCodeLibrary, JITCodeLibrary, JITCPUCodegen
from numba.core.runtime.nrtopt import remove_redundant_nrt_refct
from numba.core.typed_passes import BaseNativeLowering

LINK_ONLY = "streamlstm-link-only"
ENABLED = os.environ.get("STREAMLSTM_EMIT_INNER", "") in ("", "0")
_INNER_OPT = os.environ.get("STREAMLSTM_INNER_OPT", "").strip().lower() or "cheap"
if _INNER_OPT not in ("cheap", "full"):
    raise ValueError(f"STREAMLSTM_INNER_OPT={os.environ['STREAMLSTM_INNER_OPT']!r} in the "
                     "environment: use 'cheap' (the default) or 'full' (the INNER libraries "
                     "fully optimized too), or unset it")
CHEAP = _INNER_OPT == "cheap"
# The entry points' full module pipeline: LLVM's O2 (stop 44), or Numba's own O3.
_ENTRY_OPT = os.environ.get("STREAMLSTM_ENTRY_OPT", "").strip() or "2"
if _ENTRY_OPT not in ("2", "3"):
    raise ValueError(f"STREAMLSTM_ENTRY_OPT={os.environ['STREAMLSTM_ENTRY_OPT']!r} in the "
                     "environment: use '2' (the default: LLVM's O2 for the package's entry "
                     "points) or '3' (Numba's O3), or unset it")
ENTRY_OPT = int(_ENTRY_OPT)
FULL_O2 = "Module passes (full optimization, O2)"

_INNER = weakref.WeakSet()      # the py_funcs compiled INNER (specialize.njit)
_ENTRY = weakref.WeakSet()      # the package's other py_funcs: its entry points


def register(py_func):
    """Compile ``py_func`` (an INNER function of the package) link-only."""
    _INNER.add(py_func)


def register_entry(py_func):
    """Optimize ``py_func``'s library (an entry point of the package) at ENTRY_OPT."""
    _ENTRY.add(py_func)


def is_link_only(library) -> bool:
    """Whether ``library`` (a compile result's) was finalized link-only."""
    return getattr(library, "_streamlstm_link_only", False)


def _mark(library):
    library._streamlstm_link_only = True
    return library


_RUN_PASS = BaseNativeLowering.run_pass


def _run_pass(self, state):
    flags = state.flags     # (the same function under a plain numba.njit keeps its code)
    if (ENABLED and state.library is None and flags.no_cpython_wrapper
            and flags.no_cfunc_wrapper and state.func_id.func in _INNER):
        library = state.targetctx.codegen().create_library(state.func_id.func_qualname)
        library.enable_object_caching()         # as the pass itself does
        state.library = _mark(library)
    elif ENABLED and ENTRY_OPT != 3 and state.library is None and state.func_id.func in _ENTRY:
        library = state.targetctx.codegen().create_library(state.func_id.func_qualname)
        library.enable_object_caching()
        library._streamlstm_entry = True
        state.library = library
    return _RUN_PASS(self, state)


_OPTIMIZE_FINAL = CPUCodeLibrary._optimize_final_module


def _optimize_final_module(self):
    """A link-only library gets the first of Numba's two module pipelines only;
    an entry point's library both, the second at ENTRY_OPT."""
    entry = getattr(self, "_streamlstm_entry", False)
    if not (is_link_only(self) and CHEAP) and not entry:
        return _OPTIMIZE_FINAL(self)
    codegen = self._codegen     # the arguments of Numba's own first ("cheap") pipeline
    mpm, mpb = codegen._module_pass_manager(loop_vectorize=codegen._loopvect, slp_vectorize=False,
                                            opt=codegen._opt_level, cost="cheap")
    with self._recorded_timings.record("Module passes (cheap optimization for refprune)", mpb):
        mpm.run(self._final_module, mpb)
    if not entry:
        return
    # the rest of Numba's own (0.68): reference-count pruning, then the full
    # pipeline, here at ENTRY_OPT
    if not config.LLVM_REFPRUNE_PASS:
        self._final_module = remove_redundant_nrt_refct(self._final_module)
    mpm, mpb = codegen._module_pass_manager(opt=ENTRY_OPT)
    with self._recorded_timings.record(FULL_O2, mpb):
        mpm.run(self._final_module, mpb)


_FINALIZE_FINAL = CPUCodeLibrary._finalize_final_module


def _finalize_final_module(self):
    if not is_link_only(self):
        return _FINALIZE_FINAL(self)
    # Numba's steps up to adding the module to the JIT (which would emit it).
    self._finalize_dynamic_globals()
    self._verify_declare_only_symbols()
    self._finalized = True


_GET_POINTER = JITCodeLibrary.get_pointer_to_function


def _get_pointer_to_function(self, name):
    if not is_link_only(self):
        return _GET_POINTER(self, name)
    self._ensure_finalized()
    return 0                    # Numba's answer for a symbol the library does not define


_SERIALIZE = CPUCodeLibrary.serialize_using_object_code


def _serialize_using_object_code(self):
    if not is_link_only(self):
        return _SERIALIZE(self)
    self._ensure_finalized()
    return (self.name, LINK_ONLY, self._get_module_for_linking().as_bitcode())


_UNSERIALIZE = CPUCodeLibrary._unserialize.__func__


def _unserialize(cls, codegen, state):
    name, kind, data = state
    if kind != LINK_ONLY:
        return _UNSERIALIZE(cls, codegen, state)
    library = _mark(codegen.create_library(name))
    library._shared_module = library._final_module = ll.parse_bitcode(data)
    library._finalized = True
    return library


_SET_ENV = JITCPUCodegen.set_env


def _set_env(self, env_name, env):
    if self._engine.is_symbol_defined(env_name):
        _SET_ENV(self, env_name, env)


BaseNativeLowering.run_pass = _run_pass
CPUCodeLibrary._finalize_final_module = _finalize_final_module
CPUCodeLibrary._optimize_final_module = _optimize_final_module
JITCodeLibrary.get_pointer_to_function = _get_pointer_to_function
CPUCodeLibrary.serialize_using_object_code = _serialize_using_object_code
CPUCodeLibrary._unserialize = classmethod(_unserialize)
JITCPUCodegen.set_env = _set_env
