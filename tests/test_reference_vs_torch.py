"""The reference backend against PyTorch autograd (float64, <= 1e-9) and against
finite differences (<= 1e-6 relative): docs/spec.md section 6, the oracle's own check."""
import numpy as np
import pytest
import torch

import streamlstm
from streamlstm.backends.reference import window_loss_and_grad
from spec_torch import TorchTwin

torch.set_default_dtype(torch.float64)

CONFIGS = [
    # cell, layers, k1, k2, optimizer, clip
    ("lstm", 1, 4, 4, "adam", None),
    ("lstm", 2, 3, 7, "sgd", None),
    ("gru", 1, 5, 5, "sgd", 0.05),
    ("gru", 2, 2, 6, "adam", None),
    ("lstm", 1, 2, 5, "adam", 0.01),
    ("lstm", 3, 3, 3, "sgd", None),
]


def _opt(kind):
    return streamlstm.SGD(lr=0.05, momentum=0.9) if kind == "sgd" else \
        streamlstm.Adam(lr=0.01, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.01)


def _data(rng, T, N, I, O, nan_frac=0.0):
    U = rng.normal(size=(T, N, I))
    Y = rng.normal(size=(T, N, O))
    if nan_frac:
        Y[rng.random(Y.shape) < nan_frac] = np.nan
    return U, Y


@pytest.mark.parametrize("cell,L,k1,k2,opt,clip", CONFIGS)
def test_lockstep_matches_torch_twin(cell, L, k1, k2, opt, clip):
    rng = np.random.default_rng(1)
    net = streamlstm.OnlineRNN(n_inputs=2, hidden_size=5, n_outputs=2, n_series=3, cell=cell,
                               n_layers=L, k1=k1, k2=k2, optimizer=_opt(opt), clip_norm=clip,
                               backend="reference", seed=3)
    twin = TorchTwin(net)
    U, Y = _data(rng, 30, 3, 2, 2, nan_frac=0.2)
    for t in range(30):
        yhat = net.step(U[t], Y[t])
        np.testing.assert_allclose(yhat, twin.step(U[t], Y[t]), rtol=0, atol=1e-9)
    assert net.arrays()["opt_step"][0] == twin.n_updates > 0
    sd, tsd = net.state_dict(), twin.state_dict()
    for k in tsd:
        np.testing.assert_allclose(sd[k], tsd[k], rtol=0, atol=1e-9, err_msg=k)
    for n in range(3):
        np.testing.assert_allclose(net.get_state([n])[0], twin.live_state(n), atol=1e-9)


@pytest.mark.parametrize("cell,opt", [("lstm", "adam"), ("gru", "sgd")])
def test_clipping_that_binds_at_every_update_matches_torch(cell, opt):
    """clip_norm far below every gradient's norm: each update is clipped (the
    twin records the norms), and the result still matches torch step for step."""
    rng = np.random.default_rng(5)
    net = streamlstm.OnlineRNN(n_inputs=2, hidden_size=5, n_outputs=1, n_series=2, cell=cell,
                               n_layers=2, k1=2, k2=4, optimizer=_opt(opt), clip_norm=1e-3,
                               backend="reference", seed=4)
    twin = TorchTwin(net)
    U, Y = _data(rng, 24, 2, 2, 1)
    for t in range(24):
        np.testing.assert_allclose(net.step(U[t], Y[t]), twin.step(U[t], Y[t]), rtol=0, atol=1e-9)
    assert len(twin.grad_norms) == twin.n_updates >= 10
    assert min(twin.grad_norms) > 10 * 1e-3           # the clip bound every time
    sd, tsd = net.state_dict(), twin.state_dict()
    for k in tsd:
        np.testing.assert_allclose(sd[k], tsd[k], rtol=0, atol=1e-9, err_msg=k)


@pytest.mark.parametrize("cell,k1,k2", [("lstm", 3, 5), ("gru", 4, 4), ("lstm", 2, 2)])
def test_subset_stepping_nan_and_none_match_torch_twin(cell, k1, k2):
    """Series tick at their own pace; several can be due in one call; y=None
    and all-NaN windows (M = 0: no update, no optimizer step) included."""
    rng = np.random.default_rng(7)
    N = 4
    net = streamlstm.OnlineRNN(n_inputs=1, hidden_size=4, n_outputs=1, n_series=N, cell=cell,
                               n_layers=2, k1=k1, k2=k2, optimizer=_opt("adam"), clip_norm=0.5,
                               backend="reference", seed=11)
    twin = TorchTwin(net)
    for t in range(60):
        k = rng.integers(1, N + 1)
        series = rng.permutation(N)[:k]
        u = rng.normal(size=(k, 1))
        if t % 9 == 4:
            y = None
        else:
            y = rng.normal(size=(k, 1))
            y[rng.random(y.shape) < 0.3] = np.nan
        np.testing.assert_allclose(net.step(u, y, series=series), twin.step(u, y, series),
                                   rtol=0, atol=1e-9)
    assert net.arrays()["opt_step"][0] == twin.n_updates
    sd, tsd = net.state_dict(), twin.state_dict()
    for k in tsd:
        np.testing.assert_allclose(sd[k], tsd[k], rtol=0, atol=1e-9, err_msg=k)


def _window_setup(cell, L, T, k1, seed=0, nan=False):
    rng = np.random.default_rng(seed)
    net = streamlstm.OnlineRNN(n_inputs=3, hidden_size=4, n_outputs=2, n_series=1, cell=cell,
                               n_layers=L, k1=k1, k2=T, backend="reference", seed=seed)
    lay = net.layout
    theta = net.arrays()["theta"].copy()
    entry = rng.normal(scale=0.5, size=(L, lay.S, 4))
    wu = rng.normal(size=(T, 3))
    wy = rng.normal(size=(T, 2))
    if nan:
        wy[rng.random(wy.shape) < 0.3] = np.nan
    return net, lay, theta, entry, wu, wy


def _ref_loss_grad(lay, theta, entry, wu, wy, k1):
    diff, m, grad_fn, _ = window_loss_and_grad(lay, theta, entry, wu, wy, k1)
    M = m.sum()
    return (diff ** 2).sum() / M, grad_fn(2.0 * diff / M)


@pytest.mark.parametrize("cell,L,T,k1,nan", [("lstm", 1, 6, 6, False), ("lstm", 2, 7, 3, True),
                                             ("gru", 1, 5, 2, False), ("gru", 2, 6, 6, True)])
def test_window_gradient_matches_autograd(cell, L, T, k1, nan):
    net, lay, theta, entry, wu, wy = _window_setup(cell, L, T, k1, nan=nan)
    loss, grad = _ref_loss_grad(lay, theta, entry, wu, wy, k1)
    rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(3, 4, L)
    head = torch.nn.Linear(4, 2)
    sd = lay.to_state_dict(theta)
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            p.copy_(torch.from_numpy(sd[name]))
        head.weight.copy_(torch.from_numpy(sd["head.weight"]))
        head.bias.copy_(torch.from_numpy(sd["head.bias"]))
    e = torch.from_numpy(entry)                         # (L, S, H)
    hx = (e[:, 0:1], e[:, 1:2]) if cell == "lstm" else e[:, 0:1]
    o, _ = rnn(torch.from_numpy(wu).unsqueeze(1), hx)
    yhat = head(o[:, 0])
    Yt = torch.from_numpy(wy)
    m = ~torch.isnan(Yt)
    m[:T - k1] = False
    tl = ((yhat - torch.nan_to_num(Yt))[m] ** 2).sum() / m.sum()
    assert abs(tl.item() - loss) <= 1e-12
    tl.backward()
    G = lay.views(grad)
    for name, p in rnn.named_parameters():
        np.testing.assert_allclose(G[name], p.grad.numpy(), rtol=0, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(G["head.weight"], head.weight.grad.numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(G["head.bias"], head.bias.grad.numpy(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("cell,L", [("lstm", 1), ("lstm", 2), ("gru", 1), ("gru", 2)])
def test_window_gradient_matches_finite_differences(cell, L):
    net, lay, theta, entry, wu, wy = _window_setup(cell, L, 6, 4, seed=5, nan=True)
    _, grad = _ref_loss_grad(lay, theta, entry, wu, wy, 4)
    rng = np.random.default_rng(0)
    idx = rng.choice(lay.n_params, size=40, replace=False)
    eps = 1e-6
    for i in idx:
        tp, tm = theta.copy(), theta.copy()
        tp[i] += eps
        tm[i] -= eps
        fd = (_ref_loss_grad(lay, tp, entry, wu, wy, 4)[0] - _ref_loss_grad(lay, tm, entry, wu, wy, 4)[0]) / (2 * eps)
        assert abs(fd - grad[i]) <= 1e-6 * max(abs(fd), abs(grad[i]), 1e-3), (i, fd, grad[i])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_load_torch_state_dict_gives_torch_forward(cell):
    """A model trained offline in PyTorch loads and forecasts exactly as PyTorch."""
    torch.manual_seed(0)
    rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(2, 6, 2)
    head = torch.nn.Linear(6, 3)
    sd = dict(rnn.state_dict())
    sd.update({"head." + k: v for k, v in head.state_dict().items()})   # torch tensors accepted
    net = streamlstm.OnlineRNN(n_inputs=2, hidden_size=6, n_outputs=3, n_series=1, cell=cell,
                               n_layers=2, k1=100, k2=100, backend="reference")
    net.load_state_dict(sd)
    X = torch.randn(20, 1, 2)
    with torch.no_grad():
        expect = head(rnn(X)[0][:, 0]).numpy()
    got = np.array([net.step(X[t].numpy())[0] for t in range(20)])
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-12)
    back = net.state_dict()
    for k, v in sd.items():
        np.testing.assert_array_equal(back[k], v.numpy())


def test_float32_reference_tracks_float64_and_torch_float32():
    rng = np.random.default_rng(2)
    kw = dict(n_inputs=1, hidden_size=8, n_outputs=1, n_series=2, k1=4, k2=8, backend="reference", seed=4)
    n64 = streamlstm.OnlineRNN(dtype="float64", **kw)
    n32 = streamlstm.OnlineRNN(dtype="float32", **kw)
    twin32 = TorchTwin(n32)
    U, Y = _data(rng, 40, 2, 1, 1)
    for t in range(40):
        a, b = n64.step(U[t], Y[t]), n32.step(U[t], Y[t])
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-4)
        np.testing.assert_allclose(b, twin32.step(U[t].astype(np.float32), Y[t].astype(np.float32)),
                                   rtol=0, atol=2e-5)
    assert n32.arrays()["theta"].dtype == np.float32
