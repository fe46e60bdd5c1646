"""The CPU backend's arenas (backends/cpu/arena.py): every array the kernels keep
is a view into one float and one int64 array, and the kernels rebuild the same
views from the directory.  A wrong directory entry, stride or offset in the
view intrinsics reads another array's numbers: these tests compare every
entry, after construction, resize and load, and the forecasts' one-copy
forward against the two-copy one."""
import numba
import numpy as np
import pytest

import streamlstm
from streamlstm.backends.cpu import arena


@numba.njit
def _read_all(F, I):
    """Every arena entry, as the kernels see it (arena.FLOATS / INTS order)."""
    return ((arena.view1(F, I, arena.F_KP), arena.view1(F, I, arena.F_KM),
             arena.view1(F, I, arena.F_KV), arena.view1(F, I, arena.F_GRAD),
             arena.view4(F, I, arena.F_STATE), arena.view4(F, I, arena.F_ENTRY),
             arena.view3(F, I, arena.F_WIN_U), arena.view3(F, I, arena.F_WIN_Y),
             arena.view6(F, I, arena.F_WS0), arena.view5(F, I, arena.F_WS1),
             arena.view2(F, I, arena.F_WS2), arena.view2(F, I, arena.F_WS3),
             arena.view4(F, I, arena.F_WS4), arena.view4(F, I, arena.F_WS5),
             arena.view5(F, I, arena.F_CST), arena.view4(F, I, arena.F_CACT),
             arena.view5(F, I, arena.F_CST0), arena.view4(F, I, arena.F_CACT0)),
            (arena.view1(I, I, arena.I_OPT_STEP), arena.view1(I, I, arena.I_WIN_LEN),
             arena.view1(I, I, arena.I_COUNT), arena.view2(I, I, arena.I_KOFF),
             arena.view1(I, I, arena.I_CFG), arena.view1(I, I, arena.I_CVER),
             arena.view1(I, I, arena.I_VER), arena.view1(I, I, arena.I_STATS),
             arena.view1(I, I, arena.I_CVER0)))


def _python_views(b):
    a = b.a
    floats = [b.kp, b.km, b.kv, b.grad, a["state"], a["entry"], a["win_u"], a["win_y"],
              *b.ws, b.cache[0], b.cache[1], b.cache[0][:0], b.cache[1][:0]]
    ints = [a["opt_step"], a["win_len"], a["count"], b.koff, b.cfg, b.cache[2], b.cache[3],
            b.stats, b.cache[2][:0]]
    return floats, ints


def _check_views(net):
    b = net._impl
    kf, ki = _read_all(b.F, b.I)
    pf, pi = _python_views(b)
    assert len(kf) == len(arena.FLOATS) and len(ki) == len(arena.INTS)
    for name, k, p in zip(arena.FLOATS + arena.INTS, kf + ki, pf + pi):
        assert k.shape == p.shape and k.dtype == p.dtype, name
        assert np.array_equal(k, p, equal_nan=True), name
        if p.size:      # the same memory: a write through one shows in the other
            assert np.shares_memory(k, p), name
            assert np.shares_memory(k, b.F if name in arena.FLOATS else b.I), name
    return kf, ki


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("gru", 1)])
def test_the_kernels_views_are_the_backends_arrays(dtype, cell, layers):
    net = streamlstm.OnlineRNN(n_inputs=2, hidden_size=5, n_outputs=2, n_series=3, cell=cell,
                               n_layers=layers, k1=3, k2=3, dtype=dtype, seed=1)
    rng = np.random.default_rng(0)
    for _ in range(7):
        net.step(rng.normal(size=(3, 2)), rng.normal(size=(3, 2)))
    _check_views(net)
    net.resize(5)                       # a new arena: the old values kept, new slots zero
    kf, _ = _check_views(net)
    assert np.all(kf[arena.F_STATE][3:] == 0) and np.any(kf[arena.F_STATE][:3] != 0)
    net.load_state_dict(net.state_dict())
    _check_views(net)


def test_no_entry_overlaps_another():
    """Distinct entries never share an element (an offset error would alias two
    arrays and still pass a shape check)."""
    net = streamlstm.OnlineRNN(n_inputs=1, hidden_size=4, n_outputs=1, n_series=2, k1=2, k2=2)
    pf, pi = _python_views(net._impl)
    for group in (pf, pi):
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if a.size and b.size:
                    assert not np.shares_memory(a, b)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_forward_live_is_forward_from_a_copy_of_the_states(backend):
    net = streamlstm.OnlineRNN(n_inputs=2, hidden_size=6, n_outputs=1, n_series=4, k1=2, k2=4,
                               backend=backend, seed=2)
    rng = np.random.default_rng(1)
    for _ in range(9):
        net.step(rng.normal(size=(4, 2)), rng.normal(size=(4, 1)))
    before = {k: v.copy() for k, v in net._impl.host_arrays().items()}
    slots = np.array([3, 0, 2], dtype=np.int64)
    U = rng.normal(size=(3, 2))
    live = net.forward_live_trusted(slots, U)
    two_copies, _ = net.forward_trusted(net.states_trusted(slots), U)
    assert np.array_equal(live, two_copies)
    assert np.array_equal(live, net.predict(U, series=slots)[0])
    after = net._impl.host_arrays()
    assert all(np.array_equal(before[k], after[k], equal_nan=True) for k in before)     # pure
