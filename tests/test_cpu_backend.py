"""The Numba CPU backend against the NumPy reference (docs/spec.md section 6) and its own
bit-for-bit guarantees: run = repeated step, step_rows = one step per row,
resume = uninterrupted, and independence of thread count, slot order, workspace
size and activation cache."""
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import streamlstm
from streamlstm.backends.cpu import launcher as cpu_mod
from streamlstm.errors import CheckpointError

# float32 runs the same arithmetic in single precision (own summation orders and
# a polynomial exp instead of NumPy's), so it drifts from the float32 reference
# by rounding amplified through the learning: measured after 120-300 learning
# steps, forecasts within ~5e-6 and weights/states within ~3e-5 (3-layer GRU;
# ~1e-6 for 1-2 layer LSTMs).  A wrong gradient would be off by >1e-2.
FLOAT32_ATOL = 2e-4

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make(backend, **kw):
    cfg = dict(n_inputs=2, hidden_size=5, n_outputs=2, n_series=4, cell="lstm", n_layers=1,
               k1=3, k2=3, optimizer=streamlstm.Adam(lr=1e-2), dtype="float64", seed=3)
    cfg.update(kw)
    return streamlstm.OnlineRNN(backend=backend, **cfg)


def schedule(n_series, n_inputs, n_outputs, n_calls, seed, dtype=np.float64):
    """A reproducible mix of calls: all slots, random subsets in random order,
    missing targets (NaN) and calls without targets."""
    rng = np.random.default_rng(seed)
    calls = []
    t = 0
    for c in range(n_calls):
        kind = rng.random()
        if kind < 0.4:
            idx = None
            B = n_series
        else:
            B = int(rng.integers(1, n_series + 1))
            idx = rng.permutation(n_series)[:B]
        base = np.sin(0.3 * (t + np.arange(B)))[:, None]
        u = (base + 0.3 * rng.normal(size=(B, n_inputs))).astype(dtype)
        if rng.random() < 0.1:
            y = None
        else:
            y = (np.cos(0.2 * t) + 0.5 * rng.normal(size=(B, n_outputs))).astype(dtype)
            y[rng.random(y.shape) < 0.2] = np.nan
        calls.append((u, y, idx))
        t += 1
    return calls


def drive(net, calls):
    return [net.step(u, y, series=idx) for u, y, idx in calls]


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def assert_arrays_close(net_a, net_b, atol):
    A, B = net_a.arrays(), net_b.arrays()
    for k in A:
        a, b = A[k], B[k]
        assert a.shape == b.shape, k
        if np.issubdtype(a.dtype, np.integer):
            np.testing.assert_array_equal(a, b, err_msg=k)
        else:
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=k)
            d = max_diff(np.nan_to_num(a), np.nan_to_num(b))
            assert d <= atol, (k, d)


def assert_arrays_equal(net_a, net_b):
    A, B = net_a.arrays(), net_b.arrays()
    for k in A:
        np.testing.assert_array_equal(A[k], B[k], err_msg=k)


CONFIGS = {
    "lstm1-k1=k2-adam-clip": dict(cell="lstm", n_layers=1, k1=4, k2=4, clip_norm=0.5),
    "lstm2-k1<k2-sgdmom": dict(cell="lstm", n_layers=2, k1=3, k2=7,
                               optimizer=streamlstm.SGD(lr=0.05, momentum=0.9)),
    "gru1-k1=k2-sgd": dict(cell="gru", n_layers=1, k1=5, k2=5, optimizer=streamlstm.SGD(lr=0.1)),
    "gru2-k1<k2-adam-clip": dict(cell="gru", n_layers=2, k1=2, k2=5, clip_norm=1.0,
                                 optimizer=streamlstm.Adam(lr=5e-3, weight_decay=1e-3)),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_reference_after_1000_steps(name):
    kw = CONFIGS[name]
    ref, cpu = make("reference", **kw), make("cpu", **kw)
    calls = schedule(4, 2, 2, 1000, seed=list(CONFIGS).index(name))
    ya, yb = drive(ref, calls), drive(cpu, calls)
    assert ref.arrays()["opt_step"][0] > 100          # it really learned
    worst = max(max_diff(a, b) for a, b in zip(ya, yb))
    assert worst <= 1e-9, worst
    assert_arrays_close(ref, cpu, 1e-9)


def test_float32_matches_reference_float32():
    kw = dict(dtype="float32", cell="lstm", n_layers=2, k1=3, k2=5)
    ref, cpu = make("reference", **kw), make("cpu", **kw)
    calls = schedule(4, 2, 2, 300, seed=7, dtype=np.float32)
    ya, yb = drive(ref, calls), drive(cpu, calls)
    assert all(y.dtype == np.float32 for y in yb)
    assert cpu.arrays()["theta"].dtype == np.float32
    worst = max(max_diff(a, b) for a, b in zip(ya, yb))
    assert 0 < worst <= FLOAT32_ATOL, worst                # float32 really ran in float32
    assert_arrays_close(ref, cpu, FLOAT32_ATOL)


@pytest.mark.parametrize("cell,k1,k2,N", [("lstm", 4, 4, 5), ("gru", 3, 3, 9), ("gru", 2, 5, 5),
                                         ("lstm", 4, 4, 1)])
def test_run_equals_repeated_step_bit_for_bit(cell, k1, k2, N):
    """run() computes whole k1 = k2 lockstep windows series-major (no re-run);
    it must give the bits of the per-call path, also when it starts mid-window
    and with missing targets."""
    T = 41
    rng = np.random.default_rng(1)
    U = rng.normal(size=(T, N, 2))
    Y = rng.normal(size=(T, N, 2))
    Y[rng.random(Y.shape) < 0.2] = np.nan
    Y[7] = np.nan                                       # a step without any target
    a, b = (make("cpu", cell=cell, k1=k1, k2=k2, n_series=N) for _ in range(2))
    ya = np.concatenate([a.run(U[:2], Y[:2]), a.run(U[2:], Y[2:])])   # starts mid-window
    yb = np.stack([b.step(U[t], Y[t]) for t in range(T)])
    np.testing.assert_array_equal(ya, yb)
    assert_arrays_equal(a, b)
    if k1 == k2:                                        # the fused path really ran, step's did not
        assert a._impl.stats[2] >= (T // k1 - 1) * k1 * N and b._impl.stats[2] == 0
    yc = np.stack([b.step(U[t]) for t in range(8)])                   # no targets at all
    np.testing.assert_array_equal(a.run(U[:8], None), yc)
    assert_arrays_equal(a, b)


def test_step_rows_equals_one_step_per_row():
    N, R = 6, 300
    rng = np.random.default_rng(2)
    series = rng.integers(0, N, size=R)
    U = rng.normal(size=(R, 2))
    Y = rng.normal(size=(R, 2))
    Y[rng.random(Y.shape) < 0.1] = np.nan
    for k1, k2 in ((3, 3), (2, 4)):
        a, b = make("cpu", k1=k1, k2=k2, n_series=N), make("cpu", k1=k1, k2=k2, n_series=N)
        ya = a.step_rows(series, U, Y)
        yb = np.concatenate([b.step(U[r:r + 1], Y[r:r + 1], series=[series[r]]) for r in range(R)])
        np.testing.assert_array_equal(ya, yb)
        assert_arrays_equal(a, b)


def test_slot_order_does_not_matter():
    N = 7
    rng = np.random.default_rng(3)
    a, b = make("cpu", n_series=N, k1=2, k2=4), make("cpu", n_series=N, k1=2, k2=4)
    for t in range(30):
        u, y = rng.normal(size=(N, 2)), rng.normal(size=(N, 2))
        perm = rng.permutation(N)
        ya = a.step(u, y)
        yb = b.step(u[perm], y[perm], series=perm)
        np.testing.assert_array_equal(ya[perm], yb)
    assert_arrays_equal(a, b)


@pytest.mark.parametrize("cell,k1,k2", [("lstm", 3, 3), ("gru", 2, 4), ("lstm", 1, 8)])
def test_compile_time_switches_change_no_bit(cell, k1, k2, monkeypatch):
    """The driver's specializations (launcher._modes: rows one at a time, blocks
    of four series, serial or parallel) compute the same bits: the same calls
    forced through each agree with the specialization the sizes pick."""
    N, T = 9, 12
    rng = np.random.default_rng(8)
    U, Y = rng.normal(size=(T, N, 2)), rng.normal(size=(T, N, 2))
    Y[rng.random(Y.shape) < 0.1] = np.nan
    perms = [rng.permutation(N)[:1 + t % N] for t in range(T)]   # subsets, shuffled

    def go(modes):
        if modes is not None:
            monkeypatch.setattr(cpu_mod, "_modes", lambda rows: modes)
            monkeypatch.setattr(cpu_mod, "SMALL_ROWS", 0)     # every call asks _modes
        net = make("cpu", n_series=N, cell=cell, n_layers=2, k1=k1, k2=k2)
        out = [net.run(U[:6], Y[:6])]
        for t in range(6, T):
            out.append(net.step(U[t, perms[t]], Y[t, perms[t]], series=perms[t]))
        yhat, state = net.predict(U[0])            # the forecast path (forward_rows)
        out += [yhat, state, net.predict(U[1, :2], series=[4, 1])[0]]
        monkeypatch.undo()
        return np.concatenate([o.reshape(-1) for o in out]), net

    ref, net_ref = go(None)
    for modes in [(None, None), (None, True), (2, True)]:
        got, net = go(modes)
        np.testing.assert_array_equal(got, ref)
        assert_arrays_equal(net, net_ref)


def _many_series_run(n_threads, k1, k2):
    """Enough series for the parallel forward and many gradient chunks and lanes."""
    N, T = 1500, 9
    rng = np.random.default_rng(4)
    U = rng.normal(size=(T, N, 1))
    Y = rng.normal(size=(T, N, 1))
    Y[rng.random(Y.shape) < 0.1] = np.nan
    net = streamlstm.OnlineRNN(1, 8, 1, n_series=N, k1=k1, k2=k2, backend="cpu", seed=5)
    old = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        out = net.run(U, Y)
        perm = rng.permutation(N)     # and subset calls listing slots in shuffled order
        out2 = np.concatenate([net.step(U[t, perm[:700]], Y[t, perm[:700]], series=perm[:700])
                               for t in range(k1)])
    finally:
        numba.set_num_threads(old)
    return out, out2, net


@pytest.mark.parametrize("k1,k2,cache", [(3, 3, True), (3, 3, False), (2, 4, False)])
def test_threads_do_not_change_bits(k1, k2, cache, monkeypatch):
    """Serial and parallel code paths (forward over row blocks, updates and
    fused windows over gradient lanes), with and without the activation cache,
    give the same bits; the lane count is the model's, not the machine's."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs numba with at least 2 threads")
    monkeypatch.setattr(cpu_mod, "ACTIVATION_CACHE_BYTES", (1 << 30) if cache else 0)
    o1, p1, n1 = _many_series_run(1, k1, k2)
    o2, p2, n2 = _many_series_run(2, k1, k2)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(p1, p2)
    assert_arrays_equal(n1, n2)
    assert (n1._impl.cache[2].shape[0] > 0) == cache
    assert n1._impl.ws[3].shape[0] == 16                # GRAD_LANES for this small model
    assert (n1._impl.stats[1] > 0) != cache             # the re-run path ran (or the cache)


def test_activation_cache_changes_no_bit(monkeypatch):
    rng = np.random.default_rng(6)
    N, T = 3, 50
    U, Y = rng.normal(size=(T, N, 2)), rng.normal(size=(T, N, 2))
    with_cache = make("cpu", n_series=N, k1=4, k2=4)
    monkeypatch.setattr(cpu_mod, "ACTIVATION_CACHE_BYTES", 0)
    without = make("cpu", n_series=N, k1=4, k2=4)
    assert with_cache._impl.cache[2].shape[0] == N and without._impl.cache[2].shape[0] == 0
    # subsets and single rows too, so that cached and re-run windows mix
    for t in range(T):
        idx = None if t % 3 else rng.permutation(N)[:2]
        u, y = (U[t], Y[t]) if idx is None else (U[t, idx], Y[t, idx])
        np.testing.assert_array_equal(with_cache.step(u, y, series=idx), without.step(u, y, series=idx))
    assert_arrays_equal(with_cache, without)


@pytest.mark.parametrize("k1,k2", [(4, 4), (2, 5)])
def test_save_load_continue_equals_uninterrupted(tmp_path, k1, k2):
    N = 3
    calls = schedule(N, 2, 2, 60, seed=8)
    a, b = make("cpu", n_series=N, k1=k1, k2=k2), make("cpu", n_series=N, k1=k1, k2=k2)
    ya = drive(a, calls)
    yb = drive(b, calls[:23])                  # stop in the middle of a window
    b.save(tmp_path / "m.ckpt")
    b = streamlstm.OnlineRNN.load(tmp_path / "m.ckpt")
    assert b.backend == "cpu"
    yb += drive(b, calls[23:])
    for x, y in zip(ya, yb):
        np.testing.assert_array_equal(x, y)
    assert_arrays_equal(a, b)


def test_resize_keeps_state_and_matches_reference():
    ref, cpu = make("reference", n_series=2, k1=2, k2=3), make("cpu", n_series=2, k1=2, k2=3)
    calls = schedule(2, 2, 2, 20, seed=9)
    drive(ref, calls), drive(cpu, calls)
    before = cpu.get_state()
    ref.resize(5), cpu.resize(5)
    np.testing.assert_array_equal(cpu.get_state([0, 1]), before)
    assert np.all(cpu.get_state([2, 3, 4]) == 0)
    calls = schedule(5, 2, 2, 40, seed=10)
    ya, yb = drive(ref, calls), drive(cpu, calls)
    assert max(max_diff(a, b) for a, b in zip(ya, yb)) <= 1e-12
    assert_arrays_close(ref, cpu, 1e-12)


@pytest.mark.parametrize("cell,L", [("lstm", 2), ("gru", 3)])
def test_forward_and_get_states_match_reference(cell, L):
    ref, cpu = make("reference", cell=cell, n_layers=L), make("cpu", cell=cell, n_layers=L)
    calls = schedule(4, 2, 2, 15, seed=11)
    drive(ref, calls), drive(cpu, calls)
    assert max_diff(ref.get_state([3, 1]), cpu.get_state([3, 1])) <= 1e-12
    rng = np.random.default_rng(12)
    u = rng.normal(size=(4, 2))
    yr, sr = ref.predict(u)
    yc, sc = cpu.predict(u)
    assert max_diff(yr, yc) <= 1e-12 and max_diff(sr, sc) <= 1e-12
    state = rng.normal(size=sr.shape)
    yr2, sr2 = ref.predict(u[:3], state=state[:3])
    yc2, sc2 = cpu.predict(u[:3], state=state[:3])
    assert max_diff(yr2, yc2) <= 1e-12 and max_diff(sr2, sc2) <= 1e-12
    before = cpu.arrays()["state"].copy()
    cpu.predict(u)                                     # side-effect free
    np.testing.assert_array_equal(cpu.arrays()["state"], before)


def test_per_series_memory_is_the_spec_arrays(monkeypatch):
    """Nothing of size H per step is kept per series: beyond the SPEC arrays the
    backend's own buffers do not grow with n_series (cache off past its budget)."""
    monkeypatch.setattr(cpu_mod, "ACTIVATION_CACHE_BYTES", 0)

    def owned(net):
        impl = net._impl
        extra = sum(w.nbytes for w in impl.ws) + sum(c.nbytes for c in impl.cache) \
            + impl.kp.nbytes + impl.grad.nbytes
        return sum(v.nbytes for v in impl.host_arrays().values()), extra

    small, big = (streamlstm.OnlineRNN(1, 32, 1, n_series=n, k1=16, k2=16, dtype="float32",
                                       backend="cpu") for n in (100, 1100))
    (spec_s, extra_s), (spec_b, extra_b) = owned(small), owned(big)
    assert extra_s == extra_b
    per_series = (spec_b - spec_s) / 1000
    # state + entry (2 x L*S*H) + k2 rows of (u, y) + two int64 counters
    assert per_series == 2 * 64 * 4 + 16 * 2 * 4 + 16


def test_inconsistent_window_length_is_refused():
    net = make("cpu")
    arrays = {k: v.copy() for k, v in net.arrays().items()}
    arrays["win_len"][1] = 3                           # k2 = 3: at most 2 rows at rest
    with pytest.raises(CheckpointError, match="slot 1 has win_len=3"):
        net._impl.load_arrays(arrays)


_CHILD = r"""
import json, sys, numpy as np, streamlstm
from streamlstm.backends.cpu import kernels as K
net = streamlstm.OnlineRNN(2, 5, 2, n_series=4, k1=3, k2=3, backend="cpu", seed=3,
                           optimizer=streamlstm.Adam(lr=1e-2))
rng = np.random.default_rng(0)
U, Y = rng.normal(size=(12, 4, 2)), rng.normal(size=(12, 4, 2))
out = net.run(U, Y)
print(json.dumps({"misses": sum(K.step_calls.stats.cache_misses.values()),
                  "hits": sum(K.step_calls.stats.cache_hits.values()),
                  "out": out.tolist(), "theta": net.arrays()["theta"].tolist()}))
"""


def test_second_process_loads_the_compiled_kernels_and_agrees():
    """cache=True: a new process does not recompile, and the code it loads from
    the cache computes exactly what this process computes."""
    net = streamlstm.OnlineRNN(2, 5, 2, n_series=4, k1=3, k2=3, backend="cpu", seed=3,
                               optimizer=streamlstm.Adam(lr=1e-2))
    rng = np.random.default_rng(0)
    U, Y = rng.normal(size=(12, 4, 2)), rng.normal(size=(12, 4, 2))
    out = net.run(U, Y)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    child = json.loads(res.stdout.strip().splitlines()[-1])
    assert child["misses"] == 0 and child["hits"] >= 1
    np.testing.assert_array_equal(np.array(child["out"]), out)
    np.testing.assert_array_equal(np.array(child["theta"]), net.arrays()["theta"])


def test_float32_kernels_do_no_double_arithmetic():
    """A Python float literal in a kernel would silently promote float32 work to
    float64; compile the workers of a step and of an update for float32 and
    read their LLVM IR."""
    import re

    from numba import njit

    from streamlstm.backends.cpu import backward, config, forward, matvec

    for cell in ("lstm", "gru"):
        net = streamlstm.OnlineRNN(2, 8, 1, n_series=1, cell=cell, n_layers=2, k1=3, k2=4,
                                   dtype="float32", backend="cpu")
        b = net._impl
        cst, cact, vec, gp, dA = b.ws[0][0, 0], b.ws[1][0, 0], b.ws[2][0], b.ws[3][0], b.ws[4][0]
        act, h, c = cact[0, 0], cst[0, 0, 0], cst[0, 0, -1]
        cases = [
            (matvec.mv4, (act, act, act, act, 0, h, h, h, h, b.kp, 0, 8, b.GHp, 0, 0, 1)),
            (forward._lstm_pointwise if cell == "lstm" else forward._gru_pointwise,
             (h, c, act, b.GHp) if cell == "lstm" else (h, act, b.GHp)),
            (backward.window_backward, (3, np.float32(3), cst, cact, net.arrays()["win_u"][0],
                                        net.arrays()["win_y"][0], b.kp, b.koff, b.cfg, vec, dA, gp)),
            (matvec.dots_acc, (h, b.kp, 0, b.GHp, act, 0)),
            (matvec.outer_acc, (gp, 0, b.GHp, dA[0, 0], cst[:, 0, 0], 3)),
        ]
        for fn, args in cases:
            g = njit(**{k: v for k, v in config.FAST.items() if k != "cache"})(fn.py_func)
            g.compile(tuple(numba.typeof(a) for a in args))
            ir = g.inspect_llvm(g.signatures[0])
            ops = re.findall(r"= (?:fadd|fsub|fmul|fdiv|fneg|fpext|(?:tail )?call)[^\n]*", ir)
            assert sum("float" in op for op in ops) > 3, (cell, fn.__name__)
            doubles = [op for op in ops if "double" in op and "@Py" not in op]  # not the wrapper
            assert not doubles, (cell, fn.__name__, doubles[:3])


@pytest.mark.parametrize("dtype,cell,H,L,k1,k2", [
    ("float64", "lstm", 19, 3, 1, 1),        # a row of units ends mid-SIMD-vector
    ("float64", "gru", 37, 2, 3, 6),
    ("float32", "gru", 19, 3, 2, 2),
    ("float32", "lstm", 33, 1, 5, 8),
])
def test_odd_sizes_match_reference(dtype, cell, H, L, k1, k2):
    kw = dict(n_inputs=3, hidden_size=H, n_outputs=2, n_series=5, cell=cell, n_layers=L, k1=k1,
              k2=k2, dtype=dtype, clip_norm=1.0)
    ref, cpu = make("reference", **kw), make("cpu", **kw)
    calls = schedule(5, 3, 2, 120, seed=13, dtype=np.dtype(dtype).type)
    ya, yb = drive(ref, calls), drive(cpu, calls)
    tol = 1e-9 if dtype == "float64" else FLOAT32_ATOL
    assert max(max_diff(a, b) for a, b in zip(ya, yb)) <= tol
    assert_arrays_close(ref, cpu, tol)
