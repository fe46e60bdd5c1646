"""The CUDA backend against the NumPy reference, and its own guarantees
(docs/spec.md section 6): replay = streaming, resume = uninterrupted, determinism, and
independence from launch configuration and from which series share a call.

Under the simulator every CUDA thread is a Python thread, so the models are
tiny (I=2, H<=5, O<=2, N<=7); the launch tunables are patched tiny in
conftest.py so that these still span several blocks, grid-stride rounds,
gradient segments and chunks.
"""
import math

import numpy as np
import pytest

import streamlstm
from streamlstm import SGD, Adam, InputError

F64_TOL = 1e-9      # SPEC 6: cuda matches reference within 1e-9 (float64)
# float32: both backends compute in float32 but sum in different orders, so they
# drift apart by rounding.  After 40 learning steps of a 2-layer LSTM the largest
# difference of any array is 2.4e-7 (two float32 ulps of the O(1) states) under
# the simulator; the tolerance leaves room for a GPU's own expf/tanhf (<= 2 ulp
# each) compounding over the steps.
F32_TOL = 2e-5


def make(backend, **kw):
    args = dict(n_inputs=2, hidden_size=4, n_outputs=2, n_series=3, cell="lstm", n_layers=1,
                k1=3, k2=5, optimizer=Adam(lr=0.01), dtype="float64", seed=3)
    args.update(kw)
    return streamlstm.OnlineRNN(backend=backend, **args)


def data(T, N, I=2, O=2, seed=0, nan_frac=0.2, dtype=np.float64):
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(T, N, I)).astype(dtype)
    Y = (np.sin(np.cumsum(U.sum(axis=2, keepdims=True), axis=0)) + 0.1 * rng.normal(size=(T, N, O)))
    Y[rng.random(Y.shape) < nan_frac] = np.nan
    return U, Y.astype(dtype)


def max_diff(a, b):
    """Largest |a - b| over every model array; NaN must sit in the same places."""
    out = {}
    for k in a:
        x, y = np.asarray(a[k], dtype=np.float64), np.asarray(b[k], dtype=np.float64)
        assert x.shape == y.shape, k
        assert np.array_equal(np.isnan(x), np.isnan(y)), f"{k}: NaN pattern differs"
        out[k] = float(np.max(np.abs(np.nan_to_num(x) - np.nan_to_num(y)), initial=0.0))
    return out


def assert_close(a, b, tol):
    d = max_diff(a, b)
    worst = max(d, key=d.get)
    assert d[worst] <= tol, f"array {worst!r} differs by {d[worst]:.3g} > {tol:g} ({d})"


def assert_bitwise(a, b):
    for k in a:
        x, y = np.ascontiguousarray(a[k]), np.ascontiguousarray(b[k])
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert x.tobytes() == y.tobytes(), f"array {k!r} differs (max {max_diff({k: x}, {k: y})[k]:.3g})"


# ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell,n_layers,T", [("lstm", 1, 120), ("gru", 1, 45), ("lstm", 2, 45),
                                             ("gru", 2, 45), ("lstm", 3, 24)])
def test_matches_reference_float64(cell, n_layers, T):
    """SPEC 6: after T learning steps (an update every k1=3 steps, NaN targets
    included) every array and every forecast agree within 1e-9."""
    U, Y = data(T, 3, seed=T)
    ref = make("reference", cell=cell, n_layers=n_layers)
    gpu = make("cuda", cell=cell, n_layers=n_layers)
    yr, yg = ref.run(U, Y), gpu.run(U, Y)
    assert int(gpu.arrays()["opt_step"][0]) >= T // 3 - 1      # it did learn
    assert np.max(np.abs(yr - yg)) <= F64_TOL
    assert_close(ref.arrays(), gpu.arrays(), F64_TOL)
    # learning moved the weights far more than the tolerance
    assert np.max(np.abs(gpu.arrays()["theta"] - make("reference", cell=cell,
                                                      n_layers=n_layers).arrays()["theta"])) > 1e-3


def test_float32_matches_reference_within_documented_tolerance():
    U, Y = data(40, 3, seed=5, dtype=np.float32)
    ref = make("reference", n_layers=2, dtype="float32")
    gpu = make("cuda", n_layers=2, dtype="float32")
    yr, yg = ref.run(U, Y), gpu.run(U, Y)
    assert yg.dtype == np.float32 and gpu.arrays()["theta"].dtype == np.float32
    assert np.max(np.abs(yr - yg)) <= F32_TOL
    assert_close(ref.arrays(), gpu.arrays(), F32_TOL)


def test_subsets_in_any_order_y_none_and_nan_match_reference():
    """Series step at their own pace (SPEC 3): random subsets listed in random
    order, y=None on some calls, NaN targets, k1 < k2; H=5 > threads per block,
    so each thread handles several hidden units."""
    rng = np.random.default_rng(11)
    kw = dict(cell="gru", n_layers=2, hidden_size=5, n_series=4, k1=2, k2=5)
    ref, gpu = make("reference", **kw), make("cuda", **kw)
    for call in range(30):
        s = rng.permutation(4)[:rng.integers(1, 5)]
        u = rng.normal(size=(s.size, 2))
        y = None if call % 7 == 3 else rng.normal(size=(s.size, 2))
        if y is not None:
            y[rng.random(y.shape) < 0.25] = np.nan
        np.testing.assert_allclose(gpu.step(u, y, series=s), ref.step(u, y, series=s),
                                   rtol=0, atol=F64_TOL)
    assert int(gpu.arrays()["opt_step"][0]) > 5
    assert_close(ref.arrays(), gpu.arrays(), F64_TOL)
    gpu._impl.check_bookkeeping()


@pytest.mark.parametrize("optimizer,clip_norm", [
    (SGD(lr=0.1, momentum=0.9), 1e-3),       # clip_norm far below the gradient norm
    (SGD(lr=0.05), None),
    (Adam(lr=0.02, weight_decay=0.01), 0.05),
])
def test_optimizers_and_clipping_match_reference(optimizer, clip_norm):
    U, Y = data(20, 3, seed=2)
    kw = dict(optimizer=optimizer, clip_norm=clip_norm, k1=2, k2=3)
    ref, gpu = make("reference", **kw), make("cuda", **kw)
    np.testing.assert_allclose(gpu.run(U, Y), ref.run(U, Y), rtol=0, atol=F64_TOL)
    assert int(gpu.arrays()["opt_step"][0]) == 10
    assert_close(ref.arrays(), gpu.arrays(), F64_TOL)


def test_no_present_target_means_no_update_but_windows_move():
    """SPEC 4: M = 0 -> no update and the optimizer step count stays; the due
    windows move all the same."""
    U, Y = data(8, 3, seed=4, nan_frac=0.0)
    ref, gpu = make("reference", k1=2, k2=3), make("cuda", k1=2, k2=3)
    theta0 = gpu.arrays()["theta"].copy()
    for t in range(4):                        # two due calls, every target missing
        ref.step(U[t], None)
        gpu.step(U[t], None)
    a = gpu.arrays()
    assert int(a["opt_step"][0]) == 0 and a["theta"].tobytes() == theta0.tobytes()
    assert list(a["win_len"]) == [1, 1, 1]     # moved twice: 2 -> 1, 2 -> 1
    assert_close(ref.arrays(), a, F64_TOL)
    ref.run(U[4:], Y[4:])
    gpu.run(U[4:], Y[4:])
    assert int(gpu.arrays()["opt_step"][0]) == 2
    assert_close(ref.arrays(), gpu.arrays(), F64_TOL)


# -- bit-for-bit guarantees of one backend ----------------------------------------------
def test_run_equals_repeated_step_bit_for_bit():
    U, Y = data(12, 3, seed=6)
    a, b = make("cuda", k1=2, k2=4), make("cuda", k1=2, k2=4)
    a.step(U[0, :2], Y[0, :2], series=[0, 1])       # series out of phase first
    b.step(U[0, :2], Y[0, :2], series=[0, 1])
    ya = a.run(U[1:], Y[1:])
    yb = np.stack([b.step(U[t], Y[t]) for t in range(1, 12)])
    assert ya.tobytes() == yb.tobytes()
    assert_bitwise(a.arrays(), b.arrays())


def test_step_rows_equals_row_by_row_bit_for_bit():
    rng = np.random.default_rng(8)
    series = rng.integers(0, 3, size=16)
    U = rng.normal(size=(16, 2))
    Y = rng.normal(size=(16, 2))
    a, b = make("cuda", k1=2, k2=3), make("cuda", k1=2, k2=3)
    ya = a.step_rows(series, U, Y)
    yb = np.concatenate([b.step(U[r:r + 1], Y[r:r + 1], series=[series[r]]) for r in range(16)])
    assert ya.tobytes() == yb.tobytes()
    assert_bitwise(a.arrays(), b.arrays())
    a._impl.check_bookkeeping()


def test_resume_equals_uninterrupted_bit_for_bit(tmp_path):
    U, Y = data(14, 3, seed=9)
    a = make("cuda", cell="gru", k1=2, k2=3)
    b = make("cuda", cell="gru", k1=2, k2=3)
    a.run(U, Y)
    b.run(U[:7], Y[:7])
    b.save(tmp_path / "m.ckpt")
    c = streamlstm.OnlineRNN.load(tmp_path / "m.ckpt")
    assert c.backend == "cuda"
    c.run(U[7:], Y[7:])
    assert_bitwise(a.arrays(), c.arrays())


def test_checkpoints_cross_backends(tmp_path):
    """A checkpoint written on cuda resumes on reference and back (SPEC 6)."""
    U, Y = data(16, 3, seed=10)
    gpu = make("cuda", k1=2, k2=3)
    gpu.run(U[:8], Y[:8])
    gpu.save(tmp_path / "gpu.ckpt")
    ref = streamlstm.OnlineRNN.load(tmp_path / "gpu.ckpt", backend="reference")
    assert ref.backend == "reference"
    assert_bitwise(gpu.arrays(), ref.arrays())
    np.testing.assert_allclose(gpu.run(U[8:12], Y[8:12]), ref.run(U[8:12], Y[8:12]),
                               rtol=0, atol=F64_TOL)
    ref.save(tmp_path / "ref.ckpt")
    back = streamlstm.OnlineRNN.load(tmp_path / "ref.ckpt", backend="cuda")
    assert_bitwise(ref.arrays(), back.arrays())
    np.testing.assert_allclose(back.run(U[12:], Y[12:]), ref.run(U[12:], Y[12:]),
                               rtol=0, atol=F64_TOL)
    assert_close(ref.arrays(), back.arrays(), F64_TOL)


def test_deterministic_and_independent_of_launch_configuration(tiny_launch_config):
    """Same inputs -> the same bits, run to run, and for any block size, grid
    size and chunk size (every sum has one fixed order; no float atomics)."""
    U, Y = data(8, 5, seed=12)
    kw = dict(n_series=5, k1=2, k2=3, n_layers=2, clip_norm=0.5)
    a = make("cuda", **kw)
    a.run(U, Y)
    b = make("cuda", **kw)
    b.run(U, Y)
    assert_bitwise(a.arrays(), b.arrays())
    cfg = tiny_launch_config
    cfg.THREADS_PER_BLOCK, cfg.ELEMENTWISE_THREADS, cfg.MAX_BLOCKS = 8, 16, 8
    cfg.ROWS_PER_THREAD = 3                     # other register blocking (other kernels)
    cfg.CHUNK_BYTES = 1 << 20                   # one chunk instead of three
    c = make("cuda", **kw)
    assert c._impl._rb == 6 and c._impl._chunk_rows() > 5
    c.run(U, Y)
    assert_bitwise(a.arrays(), c.arrays())


def test_clip_coefficient_is_the_fixed_order_norm_for_any_block_size(monkeypatch):
    """update_prepare's clip coefficient from its shared lanes is that of the
    fixed-order sum (config.NORM_LANES), whatever the block size (to 1e-12: a
    GPU may contract the squares' sum into fused multiply-adds).  Under the
    simulator the allocation of shared arrays is slowed down, so that every
    thread of a block asks for the lanes before the first has them: the race
    that conftest's ``thread_safe_shared_arrays`` closes (without it, threads
    sum lanes of their own and this fails at once; the launch-configuration test
    above failed about 1 run in 10)."""
    import time

    from numba import cuda
    from numba.core import config

    from streamlstm.backends.cuda import kernels
    from streamlstm.backends.cuda.args import Optim
    from streamlstm.backends.cuda.optimizer import N_UPD, U_APPLY, U_COEF

    if config.ENABLE_CUDASIM:
        from numba.cuda.simulator import kernelapi

        class SlowNumpy:
            def __getattr__(self, name):
                return getattr(np, name)

            def empty(self, *args, **kw):
                time.sleep(0.01)         # lets the block's other threads run
                return np.empty(*args, **kw)

        monkeypatch.setattr(kernelapi, "np", SlowNumpy())
    lanes = 256
    k = kernels.kernels("float64", "lstm", lanes, 2)
    grad = np.random.default_rng(15).normal(size=1000)
    sq = [0.0] * lanes
    for p in range(grad.shape[0]):
        sq[p % lanes] += float(grad[p]) * float(grad[p])
    tot = 0.0
    for v in sq:
        tot += v
    clip = 0.5
    want = min(1.0, clip / (math.sqrt(tot) + 1e-6))
    for threads in (7, 16, 32):
        opt = Optim(opt_m=cuda.to_device(np.zeros(1)), opt_v=cuda.to_device(np.zeros(1)),
                    opt_step=cuda.to_device(np.zeros(1, dtype=np.int64)),
                    hyper=cuda.to_device(Adam(lr=0.01).hyper(clip)),
                    upd=cuda.to_device(np.zeros(N_UPD)))
        k.launch("update_prepare", 1, threads, grad=cuda.to_device(grad), opt=opt,
                 M=cuda.to_device(np.array([3], dtype=np.int64)))
        upd = opt.upd.copy_to_host()
        assert upd[U_APPLY] == 1.0, threads
        assert math.isclose(upd[U_COEF], want, rel_tol=1e-12), (threads, upd[U_COEF], want)
        assert opt.opt_step.copy_to_host()[0] == 1


def test_forward_does_not_depend_on_call_mates():
    """A series' forward arithmetic is its own: stepping slots together, alone
    or in another order gives the same bits (k1 large: no update here)."""
    U, _ = data(3, 3, seed=13)
    a, b = make("cuda", k1=50, k2=50), make("cuda", k1=50, k2=50)
    for t in range(3):
        ya = a.step(U[t], None)
        yb = np.empty_like(ya)
        yb[2] = b.step(U[t, 2:3], None, series=[2])[0]
        yb[[1, 0]] = b.step(U[t, [1, 0]], None, series=[1, 0])
        assert ya.tobytes() == yb.tobytes()
    assert_bitwise(a.arrays(), b.arrays())


# -- the rest of the contract -----------------------------------------------------------
def test_predict_get_state_resize_reset_match_reference():
    U, Y = data(6, 3, seed=14)
    ref, gpu = make("reference", k1=2, k2=3), make("cuda", k1=2, k2=3)
    ref.run(U, Y)
    gpu.run(U, Y)
    before = {k: v.copy() for k, v in gpu.arrays().items()}
    np.testing.assert_allclose(gpu.get_state([2, 0]), ref.get_state([2, 0]), rtol=0, atol=F64_TOL)
    yg, sg = gpu.predict(U[0, :2], series=[1, 2])
    yr, sr = ref.predict(U[0, :2], series=[1, 2])
    np.testing.assert_allclose(yg, yr, rtol=0, atol=F64_TOL)
    yg2, _ = gpu.predict(yg, state=sg)             # a 2-step rollout from a given state
    yr2, _ = ref.predict(yr, state=sr)
    np.testing.assert_allclose(yg2, yr2, rtol=0, atol=F64_TOL)
    assert_bitwise(before, gpu.arrays())            # predict changed nothing
    gpu.resize(5)
    ref.resize(5)
    a = gpu.arrays()
    assert a["state"].shape[0] == 5 and not a["state"][3:].any() and np.isnan(a["win_y"][3:]).all()
    gpu.reset_series([1])
    ref.reset_series([1])
    V, Z = data(4, 5, seed=15)
    np.testing.assert_allclose(gpu.run(V, Z), ref.run(V, Z), rtol=0, atol=F64_TOL)
    assert_close(ref.arrays(), gpu.arrays(), F64_TOL)
    gpu._impl.check_bookkeeping()
    assert gpu.predict(np.empty((0, 2)), state=np.empty((0, 1, 2, 4)))[0].shape == (0, 2)


def test_backward_temporaries_are_per_chunk_not_per_series():
    """Seven due series, chunks of GRAD_SEGMENT = 2 (CHUNK_BYTES patched tiny):
    the backward temporaries hold 2 series, and the result is still exact."""
    U, Y = data(6, 7, seed=16)
    ref, gpu = make("reference", n_series=7, k1=3, k2=3), make("cuda", n_series=7, k1=3, k2=3)
    np.testing.assert_allclose(gpu.run(U, Y), ref.run(U, Y), rtol=0, atol=F64_TOL)
    rows, bufs = gpu._impl._chunk
    assert rows == 2 and bufs["cache"].shape[0] == 2 and bufs["partial"].shape[0] == 1
    assert_close(ref.arrays(), gpu.arrays(), F64_TOL)


def test_rejected_call_changes_nothing():
    U, Y = data(3, 3, seed=17)
    gpu = make("cuda")
    gpu.run(U, Y)
    before = {k: v.copy() for k, v in gpu.arrays().items()}
    bad = U[0].copy()
    bad[1, 0] = np.inf
    with pytest.raises(InputError, match="non-finite"):
        gpu.step(bad, Y[0])
    with pytest.raises(InputError, match="twice"):
        gpu.step(U[0, :2], None, series=[1, 1])
    assert_bitwise(before, gpu.arrays())
    np.testing.assert_array_equal(gpu._impl.host_counts(), before["count"])
    gpu._impl.check_bookkeeping()


def test_bookkeeping_check_detects_a_broken_mirror():
    gpu = make("cuda")
    gpu.step(np.ones((3, 2)), None)
    gpu._impl.check_bookkeeping()
    gpu._impl._count[1] += 1              # what a lost update of the mirror would do
    with pytest.raises(RuntimeError, match="slot 1: device step count 1 != host mirror 2"):
        gpu._impl.check_bookkeeping()


def test_empty_model_and_empty_calls():
    gpu = make("cuda", n_series=0)
    assert gpu.run(np.empty((3, 0, 2))).shape == (3, 0, 2)
    assert gpu.step(np.empty((0, 2)), None, series=[]).shape == (0, 2)
    gpu.resize(2)
    assert gpu.step(np.ones((2, 2)), np.ones((2, 2))).shape == (2, 2)
    assert list(gpu.arrays()["count"]) == [1, 1]


def test_matches_pytorch_autograd_twin():
    """SPEC 4's acceptance check, on this backend: PyTorch autograd +
    clip_grad_norm_ + torch.optim on the same windows (tests/spec_torch.py)."""
    pytest.importorskip("torch")
    from spec_torch import TorchTwin

    rng = np.random.default_rng(21)
    gpu = make("cuda", cell="gru", n_layers=2, k1=2, k2=4,
               optimizer=SGD(lr=0.1, momentum=0.9), clip_norm=0.5)
    twin = TorchTwin(gpu)
    for call in range(14):
        s = rng.permutation(3)[:rng.integers(1, 4)]
        u = rng.normal(size=(s.size, 2))
        y = rng.normal(size=(s.size, 2))
        y[rng.random(y.shape) < 0.2] = np.nan
        np.testing.assert_allclose(gpu.step(u, y, series=s), twin.step(u, y, series=s),
                                   rtol=0, atol=F64_TOL)
    assert twin.n_updates > 4 and int(gpu.arrays()["opt_step"][0]) == twin.n_updates
    sd = gpu.state_dict()
    for k, v in twin.state_dict().items():
        np.testing.assert_allclose(sd[k], v, rtol=0, atol=F64_TOL, err_msg=k)


def test_numba_cuda_that_cannot_use_this_numpy_gives_one_line_error(monkeypatch):
    """Seen on a real H200 image: numba-cuda 0.30.4 with numpy 2.5 fails every
    compile with ``AttributeError: module 'numpy' has no attribute 'row_stack'``.
    The user gets one BackendUnavailableError naming numpy and the fix instead."""
    from streamlstm import BackendUnavailableError
    from streamlstm.backends.cuda import kernels

    def broken(*args):
        raise AttributeError("module 'numpy' has no attribute 'row_stack'")

    monkeypatch.setattr(kernels, "kernels", broken)
    with pytest.raises(BackendUnavailableError, match=r"numpy .*numpy<2\.5") as err:
        make("cuda")
    assert "\n" not in str(err.value)

    def other(*args):
        raise AttributeError("'Foo' object has no attribute 'bar'")   # our own bug: not hidden

    monkeypatch.setattr(kernels, "kernels", other)
    with pytest.raises(AttributeError, match="bar"):
        make("cuda", hidden_size=5)
