"""The kernel argument tuples the state objects keep for the per-row path
(forecast/kept_args.py): after every change that replaces an array, the tuple
handed to the compiled calls holds the new array, never the old one (a stale
tuple would let the kernels write to a dropped array, or past its end)."""
import pickle

import numba
import numpy as np
import pytest

import streamlstm
from streamlstm.forecast import experts as E
from streamlstm.forecast import intervals as I
from streamlstm.forecast.experts import ExpertState
from streamlstm.forecast.features import SeriesFeatures
from streamlstm.forecast.intervals import IntervalState


def _holds(args, arrays):
    """Every array of ``arrays`` is in ``args`` (by identity)."""
    return all(any(a is b for b in args) for a in arrays)


@pytest.mark.parametrize("scaling", ["series", "global"])
def test_series_features_tuples_follow_growth_new_columns_and_restore(scaling):
    f = SeriesFeatures((1, 3), (4.0,), 1, True, 100, trend=False, scaling=scaling)
    f.resize(1)
    k, nxt = f.kernel_arrays(), f.next_arrays()
    assert f.kernel_arrays() is k and f.next_arrays() is nxt         # kept
    f.resize(5)
    assert _holds(f.kernel_arrays(), f.a.values())
    assert _holds(f.next_arrays(), [f.a[k] for k in ("hist", "ystat", "xstat", "pos")])
    f.add_features(2)
    assert f.kernel_arrays()[2].shape[1] == 3 and _holds(f.kernel_arrays(), f.a.values())
    assert _holds(f.next_arrays(), [f.a["xstat"]])
    g = {k: v + 1.0 for k, v in (f.g or {}).items()}
    f.load({k: v.copy() for k, v in f.a.items()}, g, 5, "test")
    assert _holds(f.kernel_arrays(), f.a.values()) and _holds(f.next_arrays(), [f.a["hist"]])
    if scaling == "global":
        assert _holds(f.kernel_arrays(), f.g.values()) and _holds(f.next_arrays(), f.g.values())


@numba.njit
def _kernel_views(buf, dims):
    return E._views(buf, dims)          # what the kernels see (INNER: callable from here)


def _in_arena(st):
    """``st.a``'s arrays are views of the arena handed to the kernels, and the
    kernels' own views of it (from ``dims``' directory) are those arrays: same
    memory, shape and strides; then the seasons and the settings."""
    buf, dims = st.kernel_arrays()
    seen = _kernel_views(buf, dims)
    return (all(v.base is buf for v in st.a.values())
            and all(k.__array_interface__ == v.__array_interface__ and k.strides == v.strides
                    for k, v in zip(seen, (st.a[name] for name in st.ARRAYS)))
            and list(dims[E.D_SEASONS:]) == list(st.seasons)
            and np.array_equal(buf[:E.N_PAR], st.par))


def test_expert_state_arena_follows_growth_horizon_restore_and_pickle():
    st = ExpertState((12,), 1)
    st.resize(1)
    k = st.kernel_arrays()
    assert st.kernel_arrays() is k and _in_arena(st)
    st.update(np.zeros(30, np.int64), np.arange(30.0), np.zeros((30, 1)))
    before = {name: v.copy() for name, v in st.a.items()}
    st.resize(4)
    assert st.kernel_arrays()[0] is not k[0] and _in_arena(st)
    assert all(np.array_equal(st.a[name][:1], v, equal_nan=True) for name, v in before.items())
    st.set_horizon(3)
    assert _kernel_views(*st.kernel_arrays())[2].shape[1] == 3 and _in_arena(st)
    st.load({k: v.copy() for k, v in st.a.items()}, 4, "test")
    assert _in_arena(st)
    kept = dict(st.a)
    st.resize(8)
    st.a = kept                       # what room.resize does when memory runs out
    st.forget_args()
    assert _in_arena(st) and st.n_series == 4
    assert all(np.array_equal(st.a[name], v, equal_nan=True) for name, v in kept.items())
    st2 = pickle.loads(pickle.dumps(st))
    assert "_kernel" not in st.__getstate__()
    assert _in_arena(st2)
    rows = (np.arange(4), np.ones(4), np.ones((4, 3)))
    assert np.array_equal(st.update(*rows), st2.update(*rows))


@numba.njit
def _interval_views(buf, dims):
    return I._views(buf, dims)          # what the kernels see (INNER: callable from here)


def _in_interval_arena(st):
    """``st.a``'s arrays are views of the arena and dims handed to the kernels, and
    the kernels' own views (from the directory) are those arrays; then the settings."""
    buf, dims = st.kernel_arrays()
    seen = _interval_views(buf, dims)
    return (all(st.a[k].base is buf for k in ("trk", "pool", "pend"))
            and st.a["pos"].base is dims and st.a["pos"].dtype == np.int64
            and all(k.__array_interface__ == v.__array_interface__ and k.strides == v.strides
                    for k, v in zip(seen, (st.a[name] for name in st.ARRAYS)))
            and np.array_equal(buf[:I.N_PAR], [st.a_side, I.ETA, I.ETA_POOL, I.SCALE_WINDOW]))


def test_interval_state_arena_follows_growth_horizon_restore_and_pickle():
    st = IntervalState(0.9, 1)
    st.resize(1)
    k = st.kernel_arrays()
    assert st.kernel_arrays() is k and _in_interval_arena(st)
    st.update(np.zeros(30, np.int64), np.sin(np.arange(30.0)), np.zeros((30, 1)))
    before = {name: v.copy() for name, v in st.a.items()}
    st.resize(3)
    assert st.kernel_arrays()[0] is not k[0] and _in_interval_arena(st)
    assert all(np.array_equal(st.a[name][:1], v[:1], equal_nan=True)
               for name, v in before.items())
    assert np.array_equal(st.a["pool"], before["pool"])
    st.set_horizon(4)
    assert _interval_views(*st.kernel_arrays())[0].shape[1] == 4 and _in_interval_arena(st)
    st.load({k: v.copy() for k, v in st.a.items()}, 3, "test")
    assert _in_interval_arena(st)
    kept = dict(st.a)
    st.resize(8)
    st.a = kept                       # what room.resize does when memory runs out
    st.forget_args()
    assert _in_interval_arena(st) and st.n_series == 3
    assert all(np.array_equal(st.a[name], v, equal_nan=True) for name, v in kept.items())
    st2 = pickle.loads(pickle.dumps(st))
    assert "_kernel" not in st.__getstate__()
    assert _in_interval_arena(st2)
    rows = (np.arange(3), np.ones(3), np.ones((3, 4)))
    b1, b2 = st.update(*rows), st2.update(*rows)
    assert all(np.array_equal(getattr(b1, f), getattr(b2, f), equal_nan=True)
               for f in ("lo", "hi", "scores"))
    old = dict(st2.__getstate__())         # as pickled before the arena: no settings kept
    del old["par"]
    st3 = IntervalState.__new__(IntervalState)
    st3.__setstate__({k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in old.items()}
                     | {"a": {k: v.copy() for k, v in st2.a.items()}})
    assert _in_interval_arena(st3)
    b3 = st3.update(*rows)
    b2 = st2.update(*rows)
    assert all(np.array_equal(getattr(b2, f), getattr(b3, f), equal_nan=True)
               for f in ("lo", "hi", "scores"))


def test_cpu_kernel_args_follow_growth():
    m = streamlstm.MultiSeriesForecaster(hidden_size=4)
    m.predict_learn(["a"], [1.0])
    assert m.net.cpu_kernel_args()[4].shape[0] == m.net.n_series
    m.predict_learn([f"s{i}" for i in range(20)], np.arange(20.0))
    args = m.net.cpu_kernel_args()
    assert args[4].shape[0] == m.net.n_series >= 21 and args is m.net.cpu_kernel_args()
