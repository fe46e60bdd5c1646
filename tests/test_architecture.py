"""The package's shape, checked (docs/architecture.md): layers import downward
only, no module reaches into another module's private names, the CUDA kernels
carry no cell math of their own, and no module or function grows past the size a
reader can hold in mind."""
import ast
import pathlib
import re

import pytest

PKG = pathlib.Path(__file__).resolve().parent.parent / "streamlstm"
MODULES = sorted(PKG.rglob("*.py"))

# errors < core = backends < forecast < stream < io < cli
RANK = {"errors": 0, "core": 1, "backends": 1, "forecast": 2, "stream": 3, "io": 4, "cli": 5}
TOP = {"__init__": 9, "__main__": 9}      # the package facade and `python -m`

MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 100


def _name(path):
    return ".".join(("streamlstm",) + path.relative_to(PKG).with_suffix("").parts)


def _layer(modname):
    parts = modname.split(".")
    if len(parts) < 2:
        return None
    return parts[1]


def _rank(modname):
    layer = _layer(modname)
    return RANK.get(layer, TOP.get(layer))


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            yield node.lineno, "." * node.level + (node.module or ""), [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, []


def _trees():
    return [(p, ast.parse(p.read_text(), str(p))) for p in MODULES]


def test_layout_has_layers():
    subpackages = [d.name for d in PKG.iterdir() if (d / "__init__.py").exists()]
    assert set(RANK) - {"errors"} <= set(subpackages)


def test_imports_go_downward_only():
    bad = []
    for path, tree in _trees():
        me = _name(path)
        for line, mod, names in _imports(tree):
            if mod.startswith("."):
                bad.append(f"{me}:{line} relative import {mod}: use absolute streamlstm.* names")
                continue
            if not mod.startswith("streamlstm"):
                continue
            targets = [mod] if mod != "streamlstm" else [f"streamlstm.{n}" for n in names]
            for target in targets:
                mine, theirs = _rank(me), _rank(target)
                if theirs is None or mine is None:
                    continue
                if theirs > mine:
                    bad.append(f"{me}:{line} imports {target} (layer {_layer(target)} is above "
                               f"{_layer(me)})")
                if _layer(me) == "backends" and target == "streamlstm.core.online_rnn":
                    bad.append(f"{me}:{line}: a backend never imports OnlineRNN")
    assert not bad, "\n".join(bad)


def _defined_private_names(tree):
    """Private names a module defines: functions, classes, attributes it assigns
    (``x._a = ...``, class bodies) and names it binds."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
    return {n for n in out if n.startswith("_")}


# Third-party names with a leading underscore that we use on purpose, each in one
# module, with the reason:
# - confluent-kafka spells some public error codes that way (KafkaError._PARTITION_EOF);
# - River metrics keep their running mean in ``_mean`` and rebuild one with
#   ``stats.Mean._from_state``; River has no public state API, and the checkpoint
#   stores exactly those numbers (no pickle), so stream/metrics.py is the one
#   place that knows (its comment says so);
# - Numba's struct proxies (``context.make_array(...)``) give their LLVM value by
#   ``_getvalue()``, the spelling of Numba's own extending guide (the "interval"
#   example); backends/cpu/arena.py builds array views that way;
# - ``os._exit`` is the documented way for a forked child to leave without
#   running its parent's atexit handlers and buffers (backends/compile_child.py);
# - Numba has no public "is this signature in the disk cache?" call:
#   backends/cache.py ``is_cached`` makes the lookup ``Cache.load_overload`` makes
#   (``_index_key``, ``_cache_file._load_index``), with a fallback should they change;
# - backends/cache_lock.py replaces Numba's unlocked cache-file save and load
#   (a race between processes binds a key to another signature's code) with the
#   same steps under a lock, through the helpers Numba's own save and load use;
# - backends/link_only.py finalizes, saves and loads the libraries of functions only
#   compiled code calls without emitting machine code (which never runs); Numba has
#   no hook for that, so it replaces those methods of its code library with Numba's
#   own steps less the JIT, through the helpers the originals use; and it runs
#   only the first of Numba's two module pipelines on them, built as Numba builds
#   it (its codegen's pass-manager factory and settings, its timings recorder).
THIRD_PARTY = {"streamlstm.stream.metrics": {"_mean", "_from_state"},
               "streamlstm.backends.cpu.arena": {"_getvalue"},
               "streamlstm.backends.compile_child": {"_exit"},
               "streamlstm.backends.cache": {"_index_key", "_cache_file", "_load_index"},
               "streamlstm.backends.cache_lock": {"_cache_path", "_load_index", "_save_index",
                                                  "_load_data", "_save_data", "_data_name"},
               "streamlstm.backends.link_only": {"_finalize_dynamic_globals",
                                                 "_verify_declare_only_symbols",
                                                 "_ensure_finalized", "_engine",
                                                 "_get_module_for_linking", "_codegen",
                                                 "_module_pass_manager", "_loopvect",
                                                 "_opt_level", "_recorded_timings"}}


def _third_party_constant(node, module):
    if isinstance(node.value, ast.Name) and node.value.id == "KafkaError":
        return True
    return node.attr in THIRD_PARTY.get(module, ())


def test_no_reach_into_private_names_of_other_modules():
    bad = []
    for path, tree in _trees():
        mine = _defined_private_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                    and not node.attr.startswith("__") and node.attr not in mine \
                    and not _third_party_constant(node, _name(path)):
                bad.append(f"{_name(path)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("streamlstm"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{_name(path)}:{node.lineno} imports {a.name}")
    assert not bad, "private names used outside the module that defines them:\n" + "\n".join(bad)


def test_cuda_kernels_define_no_cell_math():
    """The scalar cell math lives once, in backends/cellmath.py; numba.cuda
    compiles those @njit functions as device functions."""
    bad = []
    for path in sorted((PKG / "backends" / "cuda").glob("*.py")):
        src = path.read_text()
        for m in re.finditer(r"\b(math\.)?(exp|tanh|expm1|log1p)\(", src):
            bad.append(f"{path.name}:{src[:m.start()].count(chr(10)) + 1} calls {m.group(0)}")
        tree = ast.parse(src)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and re.search(r"sigmoid|(lstm|gru)_cell", node.name):
                bad.append(f"{path.name}:{node.lineno} defines {node.name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_sizes(path):
    src = path.read_text()
    n = src.count("\n")
    assert n <= MAX_MODULE_LINES, f"{path.name} has {n} lines (at most {MAX_MODULE_LINES})"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(src))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: " + ", ".join(long)


def test_no_link_leaves_the_repository():
    root = PKG.parent
    files = [*root.glob("*.md"), *(root / "docs").glob("*.md"), *MODULES,
             *(root / "tests").rglob("*.py"), *(root / "bench").glob("*.py")]
    bad = [f"{f.relative_to(root)}" for f in files if "../" + "shared" in f.read_text()]
    assert not bad, "links outside the repository in: " + ", ".join(bad)
