"""OnlineRNN's public contract on every host backend: docs/spec.md section 5 and the
guarantees of section 6 (replay = streaming, resume = uninterrupted, bad input
rejected with the model unchanged)."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

import streamlstm
from streamlstm import CheckpointError, InputError
from streamlstm.core import checkpoint as ckpt

BACKENDS = ["reference", "cpu"]


def make(backend="reference", **kw):
    cfg = dict(n_inputs=2, hidden_size=6, n_outputs=1, n_series=3, cell="lstm", n_layers=2,
               k1=3, k2=5, optimizer=streamlstm.Adam(lr=0.01), backend=backend, seed=1)
    cfg.update(kw)
    return streamlstm.OnlineRNN(**cfg)


def snapshot(net):
    return {k: v.copy() for k, v in net.arrays().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def data(T=40, N=3, I=2, O=1, seed=0):
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(T, N, O))
    Y[rng.random(Y.shape) < 0.1] = np.nan
    return rng.normal(size=(T, N, I)), Y


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_run_equals_repeated_step_bit_for_bit(backend, cell):
    U, Y = data()
    a, b = make(backend, cell=cell), make(backend, cell=cell)
    out = a.run(U, Y)
    steps = np.stack([b.step(U[t], Y[t]) for t in range(len(U))])
    np.testing.assert_array_equal(out, steps)
    assert_same(snapshot(a), snapshot(b))


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_rows_equals_one_step_per_row_bit_for_bit(backend):
    rng = np.random.default_rng(3)
    R = 120
    series = rng.integers(0, 3, size=R)
    U = rng.normal(size=(R, 2))
    Y = rng.normal(size=(R, 1))
    a, b = make(backend), make(backend)
    out = a.step_rows(series, U, Y)
    rows = np.concatenate([b.step(U[r:r + 1], Y[r:r + 1], series=[series[r]]) for r in range(R)])
    np.testing.assert_array_equal(out, rows)
    assert_same(snapshot(a), snapshot(b))
    assert a.arrays()["opt_step"][0] > 0


OPTIMIZERS = {"sgd": lambda: streamlstm.SGD(lr=0.05, momentum=0.9),
              "adam": lambda: streamlstm.Adam(lr=0.01, weight_decay=0.01)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
# k1 = 3 < k2 = 5: updates fall due at steps 3, 6, ...; cut before, at and after one.
@pytest.mark.parametrize("cut", [1, 2, 3, 4, 7, 15, 39])
def test_resume_equals_uninterrupted_bit_for_bit(backend, opt, cut, tmp_path):
    U, Y = data()
    full = make(backend, optimizer=OPTIMIZERS[opt](), clip_norm=1.0)
    expect = full.run(U, Y)
    part = make(backend, optimizer=OPTIMIZERS[opt](), clip_norm=1.0)
    first = part.run(U[:cut], Y[:cut])
    path = tmp_path / "m.ckpt"
    part.save(path)
    del part
    resumed = streamlstm.OnlineRNN.load(path)
    rest = resumed.run(U[cut:], Y[cut:])
    np.testing.assert_array_equal(np.concatenate([first, rest]), expect)
    assert_same(snapshot(resumed), snapshot(full))
    assert resumed.config() == full.config()


@pytest.mark.parametrize("backend", BACKENDS)
def test_listing_order_does_not_change_results(backend):
    U, Y = data(T=20)
    a, b = make(backend), make(backend)
    perm = np.array([2, 0, 1])
    for t in range(20):
        ya = a.step(U[t], Y[t])
        yb = b.step(U[t][perm], Y[t][perm], series=perm)
        np.testing.assert_array_equal(ya[perm], yb)
    assert_same(snapshot(a), snapshot(b))


@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_keeps_state_and_new_slots_start_fresh(backend):
    U, Y = data(T=10)
    net = make(backend)
    net.run(U, Y)
    before = snapshot(net)
    net.resize(5)
    after = net.arrays()
    for k in ("state", "entry", "win_u", "win_len", "count"):
        np.testing.assert_array_equal(after[k][:3], before[k][:3])
    assert np.all(after["state"][3:] == 0) and np.all(after["count"][3:] == 0)
    fresh = make(backend, n_series=1)
    fresh.load_state_dict(net.state_dict())
    # a new slot forecasts like a fresh series under the same weights
    np.testing.assert_array_equal(net.predict(U[0, :1], series=[4])[0], fresh.predict(U[0, :1])[0])
    with pytest.raises(InputError, match="only be added"):
        net.resize(2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_series_forgets_only_those_slots(backend):
    U, Y = data(T=10)
    net = make(backend)
    net.run(U, Y)
    keep = net.get_state([0, 2])
    net.reset_series([1])
    assert np.all(net.get_state([1]) == 0) and net.arrays()["count"][1] == 0
    np.testing.assert_array_equal(net.get_state([0, 2]), keep)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_is_side_effect_free_and_matches_step(backend):
    U, Y = data(T=8)
    net = make(backend, k1=50, k2=50)  # no update inside this test
    net.run(U[:5], Y[:5])
    before = snapshot(net)
    yhat, st = net.predict(U[5])
    assert_same(before, snapshot(net))
    yhat2, st2 = net.predict(U[6], state=st)
    np.testing.assert_array_equal(net.step(U[5]), yhat)
    np.testing.assert_array_equal(net.get_state(), st)
    np.testing.assert_array_equal(net.step(U[6]), yhat2)


# -- bad input: named argument, position and value; model unchanged ----------------------
BAD_CALLS = [
    (lambda n: n.step(np.ones((3, 3))), r"u has shape \(3, 3\); expected \(B, I\) = \(3, 2\)"),
    (lambda n: n.step(np.array([["a", "b"]] * 3)), r"u has dtype <U1"),
    (lambda n: n.step(np.array([[0, 1], [2, np.inf], [0, 0]])), r"non-finite value inf at row 1 \(series slot 1\), input column 1"),
    (lambda n: n.step(np.ones((2, 2)), series=[0, 0]), r"lists slot 0 twice"),
    (lambda n: n.step(np.ones((1, 2)), series=[7]), r"series\[0\]=7 is out of range.*n_series=3"),
    (lambda n: n.step(np.ones((1, 2)), series=[-1]), r"series\[0\]=-1 is out of range"),
    (lambda n: n.step(np.ones((1, 2)), series=[0.5]), r"integer slot indices"),
    (lambda n: n.step(np.ones((3, 2)), y=np.ones((3, 2))), r"y has shape \(3, 2\); expected \(B, O\) = \(3, 1\)"),
    (lambda n: n.step(np.ones((3, 2)), y=np.array([[1.0], [-np.inf], [0]])), r"infinite value -inf at row 1"),
    (lambda n: n.run(np.ones((4, 2, 2))), r"U has shape \(4, 2, 2\)"),
    (lambda n: n.run(np.full((4, 3, 2), np.nan)), r"non-finite value nan at U\[0, 0\] \(step 0, series slot 0\)"),
    (lambda n: n.step_rows([0, 1], np.ones((2, 2)), np.ones((3, 1))), r"y has shape"),
    (lambda n: n.step_rows([0, 9], np.ones((2, 2))), r"series\[1\]=9 is out of range"),
    (lambda n: n.load_state_dict({**n.state_dict(), "weight_hh_l0": np.ones((2, 2))}),
     r"state_dict\['weight_hh_l0'\] has shape \(2, 2\), expected \(24, 6\)"),
    (lambda n: n.load_state_dict({k: v for k, v in n.state_dict().items() if k != "head.bias"}),
     r"missing key 'head.bias'"),
    (lambda n: n.load_state_dict({**n.state_dict(), "extra": np.ones(1)}), r"unexpected key 'extra'"),
    (lambda n: n.predict(np.ones((1, 2)), state=np.ones((1, 2, 2, 5))), r"state has shape"),
    # inputs shaped for the fast path (float64 C arrays, int64 slots): the full checks' errors
    (lambda n: n.step(np.ones((2, 2)), series=np.array([1, 1])), r"lists slot 1 twice"),
    (lambda n: n.step(np.ones((1, 2)), series=np.array([3])), r"series\[0\]=3 is out of range"),
    (lambda n: n.step(np.array([[0.0, np.nan]]), series=np.array([2])),
     r"non-finite value nan at row 0 \(series slot 2\), input column 1"),
    (lambda n: n.step(np.ones((3, 2)), y=np.array([[0.0], [np.inf], [1.0]])), r"infinite value inf at row 1"),
    (lambda n: n.step_rows(np.array([0, 3]), np.ones((2, 2))), r"series\[1\]=3 is out of range"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call,msg", BAD_CALLS)
def test_bad_input_is_rejected_and_model_unchanged(backend, call, msg):
    net = make(backend)
    net.run(*data(T=4))
    before = snapshot(net)
    with pytest.raises(InputError, match=msg):
        call(net)
    assert_same(before, snapshot(net))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fast_path_gives_the_checked_path_bits(backend):
    """step/step_rows pass ready arrays (float64 C-contiguous, int64 slots) straight
    to the backend (issue 13); lists take the full checks.
    Both give the same bits, and so does every model array afterwards."""
    U, Y = data(T=24)
    Y[::5, 1] = np.nan
    fast, slow = make(backend), make(backend)
    for t in range(12):
        y = None if t % 4 == 3 else Y[t]
        a = fast.step(U[t], y)
        b = slow.step(U[t].tolist(), None if y is None else y.tolist())
        np.testing.assert_array_equal(a, b)
        s = np.array([2, 0], dtype=np.int64)
        a = fast.step(U[t + 12, :2], Y[t + 12, :2], series=s)
        b = slow.step(U[t + 12, :2].tolist(), Y[t + 12, :2].tolist(), series=[2, 0])
        np.testing.assert_array_equal(a, b)
    rows = np.array([1, 1, 0, 2, 1], dtype=np.int64)
    a = fast.step_rows(rows, U[:5, 0], Y[:5, 0])
    b = slow.step_rows(rows.tolist(), U[:5, 0].tolist(), Y[:5, 0].tolist())
    np.testing.assert_array_equal(a, b)
    assert_same(snapshot(fast), snapshot(slow))


def test_one_value_fast_path_checks_what_the_full_checks_do():
    """A one-input, one-output model's one-row step (a sensor stream's call per
    arrival) takes a shorter fast path (online_rnn._fast_rows: a one-element
    array is C-contiguous whatever its strides): it gives the checked path's
    bits, and everything it does not vouch for - non-finite u, infinite y,
    another dtype, another shape, an ndarray subclass - goes through the full
    checks: the same clear errors, the model unchanged, no new kernel compiled."""
    from streamlstm.backends.cpu import kernels
    rng = np.random.default_rng(5)
    U, Y = rng.normal(size=(20, 1, 1)), rng.normal(size=(20, 1, 1))
    Y[3] = np.nan
    kw = dict(n_inputs=1, n_outputs=1, n_series=1, k1=4, k2=4)
    fast, slow = make("cpu", **kw), make("cpu", **kw)
    s1 = np.array([0], dtype=np.int64)
    odd = np.full((3, 3), 9.0)[1:2, ::2][:, :1]      # a (1, 1) view with odd strides
    for t in range(20):
        y = None if t % 7 == 6 else Y[t]
        u = odd * U[t, 0, 0] / 9.0 if t == 5 else U[t]
        np.testing.assert_array_equal(fast.step(u, y, series=s1),
                                      slow.step(u.tolist(), None if y is None else y.tolist(),
                                                series=[0]))
        np.testing.assert_array_equal(fast.step(U[t]), slow.step(U[t].tolist()))
    assert_same(snapshot(fast), snapshot(slow))
    n_sigs = len(kernels.step_calls.signatures)
    for u, y, msg in [(np.array([[np.nan]]), None, r"non-finite value nan at row 0"),
                      (np.array([[np.inf]]), np.ones((1, 1)), r"non-finite value inf at row 0"),
                      (np.ones((1, 1)), np.array([[-np.inf]]), r"infinite value -inf at row 0"),
                      (np.ones((1, 2)), None, r"u has shape \(1, 2\)"),
                      (np.ones(1), None, r"u has shape \(1,\)"),
                      (np.ones((1, 1)), np.ones((1, 2)), r"y has shape \(1, 2\)")]:
        before = snapshot(fast)
        with pytest.raises(InputError, match=msg):
            fast.step(u, y, series=s1)
        assert_same(before, snapshot(fast))
    # accepted after the full checks (converted), with the bits of the checked path
    for u, y in [(np.ones((1, 1), dtype=np.float32), np.ones((1, 1))),
                 (np.ones((1, 1)), np.ones((1, 1), dtype=np.float32)),
                 (np.ones((1, 1)).view(np.matrix), np.ones((1, 1)))]:
        a = fast.step(u, y, series=s1)
        b = slow.step(np.asarray(u, dtype=np.float64).reshape(1, 1).tolist(),
                      np.asarray(y, dtype=np.float64).reshape(1, 1).tolist(), series=[0])
        np.testing.assert_array_equal(np.asarray(a).reshape(1, 1), b)
    assert_same(snapshot(fast), snapshot(slow))
    assert len(kernels.step_calls.signatures) == n_sigs     # nothing else reached the kernel


@pytest.mark.parametrize("kw,msg", [
    (dict(k1=5, k2=3), r"k1=5 > k2=3"),
    (dict(backend="tpu"), r"backend='tpu' is unknown"),
    (dict(cell="rnn"), r"cell='rnn' is unknown"),
    (dict(dtype="float16"), r"dtype='float16' is unknown"),
    (dict(hidden_size=0), r"hidden_size=0 is out of range"),
    (dict(n_layers=1.5), r"n_layers must be an integer"),
    (dict(optimizer="adam"), r"optimizer must be streamlstm.SGD"),
    (dict(clip_norm=-1), r"clip_norm=-1 must be a positive number"),
])
def test_bad_constructor_arguments(kw, msg):
    with pytest.raises(InputError, match=msg):
        make(**{"backend": "reference", **kw})


@pytest.mark.parametrize("kw,msg", [
    (dict(lr=-1), r"SGD\(lr=-1\) must be > 0"),
    (dict(lr=0.1, momentum=2), r"momentum=2\) must be <= 1"),
])
def test_bad_optimizer_arguments(kw, msg):
    with pytest.raises(InputError, match=msg):
        streamlstm.SGD(**kw)
    with pytest.raises(InputError, match=r"betas"):
        streamlstm.Adam(betas=(0.9, 1.5))


# -- checkpoints: corrupt, truncated, foreign, other version -------------------------------
@pytest.fixture
def saved(tmp_path):
    net = make("reference")
    net.run(*data(T=6))
    path = tmp_path / "m.ckpt"
    net.save(path)
    return path


def test_checkpoint_truncated(saved):
    raw = saved.read_bytes()
    for cut in (4, 30, len(raw) // 2, len(raw) - 3):
        saved.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="truncated|not a streamlstm"):
            streamlstm.OnlineRNN.load(saved)


def test_checkpoint_bit_flip_names_the_array(saved):
    raw = bytearray(saved.read_bytes())
    raw[-20] ^= 0xFF     # inside the last array's bytes
    saved.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"array '\w+' fails its checksum"):
        streamlstm.OnlineRNN.load(saved)


def test_checkpoint_damaged_header_is_refused(saved):
    """A digit changed inside the JSON header still parses: only the header's
    checksum can tell, and the error says so."""
    raw = bytearray(saved.read_bytes())
    at = raw.index(b'"nbytes": ') + len(b'"nbytes": ')
    raw[at] = ord("9") if raw[at] != ord("9") else ord("8")
    saved.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="header checksum mismatch"):
        streamlstm.OnlineRNN.load(saved)


@pytest.mark.parametrize("backend", BACKENDS)
def test_refused_load_state_dict_changes_nothing(backend):
    """Every key but the last is valid: the refusal still leaves every array as
    it was (weights are only replaced once the whole dict has been read)."""
    net = make(backend)
    net.run(*data(T=8))
    before = snapshot(net)
    d = {k: v + 1.0 for k, v in net.state_dict().items()}
    last = list(d)[-1]
    d[last] = np.full_like(d[last], np.nan)
    with pytest.raises(InputError, match=last):
        net.load_state_dict(d)
    assert_same(snapshot(net), before)


def test_checkpoint_foreign_file_and_version(saved, tmp_path):
    foreign = tmp_path / "x.ckpt"
    foreign.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(CheckpointError, match="not a streamlstm checkpoint"):
        streamlstm.OnlineRNN.load(foreign)
    raw = bytearray(saved.read_bytes())
    raw[8:12] = (99).to_bytes(4, "little")
    saved.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="format version 99.*upgrade streamlstm"):
        streamlstm.OnlineRNN.load(saved)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        streamlstm.OnlineRNN.load(tmp_path / "missing.ckpt")


def test_checkpoint_of_another_kind_is_refused(tmp_path):
    p = tmp_path / "other.ckpt"
    ckpt.write(p, kind="Something", meta={}, arrays={"a": np.zeros(3)})
    with pytest.raises(CheckpointError, match="holds a 'Something'"):
        streamlstm.OnlineRNN.load(p)


def test_checkpoint_write_is_atomic(saved, tmp_path, monkeypatch):
    """A crash while writing leaves the previous file intact and no temp file."""
    good = saved.read_bytes()
    net = make("reference")

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        net.save(saved)
    assert saved.read_bytes() == good
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


# -- property tests ----------------------------------------------------------------------
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(I=st.integers(1, 3), O=st.integers(1, 3), H=st.integers(1, 5), N=st.integers(1, 4),
       L=st.integers(1, 3), cell=st.sampled_from(["lstm", "gru"]), k1=st.integers(1, 4),
       extra=st.integers(0, 3), T=st.integers(1, 12), nan_p=st.floats(0, 1), seed=st.integers(0, 99))
def test_property_shapes_nans_and_replay(I, O, H, N, L, cell, k1, extra, T, nan_p, seed):
    """Any shapes: outputs have the right shape and are finite even with NaN targets;
    run = step; windows never exceed k2; counts count."""
    rng = np.random.default_rng(seed)
    kw = dict(n_inputs=I, hidden_size=H, n_outputs=O, n_series=N, cell=cell, n_layers=L,
              k1=k1, k2=k1 + extra, backend="reference", seed=seed)
    a, b = streamlstm.OnlineRNN(**kw), streamlstm.OnlineRNN(**kw)
    U = rng.normal(size=(T, N, I))
    Y = rng.normal(size=(T, N, O))
    Y[rng.random(Y.shape) < nan_p] = np.nan
    out = a.run(U, Y)
    assert out.shape == (T, N, O) and np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, np.stack([b.step(U[t], Y[t]) for t in range(T)]))
    arr = a.arrays()
    assert np.all(arr["win_len"] <= k1 + extra)
    assert np.all(arr["count"] == T)
    assert np.all(np.isfinite(arr["theta"]))
    if np.all(np.isnan(Y)):
        assert arr["opt_step"][0] == 0   # M = 0: no update, the step count does not move


def test_checkpoint_with_out_of_range_window_is_refused(tmp_path):
    """A checksum-valid file whose values the kernels would index out of range."""
    net = make("reference")
    net.run(*data(T=6))
    arrays = {k: v.copy() for k, v in net.arrays().items()}
    arrays["win_len"][1] = net.k2 + 3
    p = tmp_path / "bad.ckpt"
    ckpt.write(p, kind="OnlineRNN", meta={"config": net.config(), "layout": net.layout.describe()},
               arrays=arrays)
    with pytest.raises(CheckpointError, match=r"series slot 1 has window length 8, outside 0..k2-1=4"):
        streamlstm.OnlineRNN.load(p)
