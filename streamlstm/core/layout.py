"""The one source of truth for the packed weight layout, the gate order and the
per-series state arrays (docs/spec.md sections 1, 2 and 4).

Every backend, the optimizers, ``state_dict()`` and the checkpoint go through
this module.  Parameters live in ONE flat vector ``theta`` of length
``Layout.n_params``; gradients and optimizer moments share the same layout, so
zero-grad, the optimizer step and the checkpoint are each a single loop.

Packed order (identical to ``torch.nn.LSTM/GRU(I, H, L).state_dict()`` followed
by ``nn.Linear(H, O).state_dict()`` prefixed ``head.``)::

    for k in range(L):
        weight_ih_l{k}  (G*H, in_k)    in_0 = I, in_k = H for k > 0
        weight_hh_l{k}  (G*H, H)
        bias_ih_l{k}    (G*H,)
        bias_hh_l{k}    (G*H,)
    head.weight         (O, H)
    head.bias           (O,)

Gate blocks inside the G*H rows follow PyTorch: LSTM (i, f, g, o), GRU
(r, z, n); row ``gate * H + j`` is unit ``j`` of that gate.

Per-series state (host arrays; the CUDA backend keeps device twins)::

    state    (N, L, S, H)   live state; S = 2 for LSTM (h, c), 1 for GRU (h)
    entry    (N, L, S, H)   window-entry state (docs/spec.md section 3, step 2)
    win_u    (N, k2, I)     the window's inputs, oldest first
    win_y    (N, k2, O)     the window's targets (NaN = missing)
    win_len  (N,)  int64    rows currently in the window
    count    (N,)  int64    the series' own step count
    theta    (P,)           weights
    opt_m    (P,)           Adam first moment / SGD momentum buffer
    opt_v    (P,)           Adam second moment (unused by SGD)
    opt_step (1,)  int64    optimizer updates so far
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
STATE_PARTS = {"lstm": ("h", "c"), "gru": ("h",)}
CELLS = tuple(GATES)
DTYPES = {"float32": np.float32, "float64": np.float64}

# Column indices of ``Layout.offsets`` (one row per layer).
OFF_WIH, OFF_WHH, OFF_BIH, OFF_BHH = 0, 1, 2, 3

# Names of the per-series arrays and of the model-wide arrays, in checkpoint order.
SERIES_ARRAYS = ("state", "entry", "win_u", "win_y", "win_len", "count")
MODEL_ARRAYS = ("theta", "opt_m", "opt_v", "opt_step")
ALL_ARRAYS = MODEL_ARRAYS + SERIES_ARRAYS
# The arrays that hold counts (INDEX_DTYPE); every other array has the model's float dtype.
INDEX_DTYPE = np.int64
INT_ARRAYS = ("win_len", "count", "opt_step")


@dataclass(frozen=True)
class Layout:
    """Shapes and offsets of every parameter tensor inside the flat ``theta``."""

    cell: str
    n_inputs: int
    hidden_size: int
    n_outputs: int
    n_layers: int

    @property
    def G(self) -> int:
        """Gates per unit: 4 for LSTM, 3 for GRU."""
        return len(GATES[self.cell])

    @property
    def S(self) -> int:
        """State vectors per layer: 2 for LSTM (h, c), 1 for GRU (h)."""
        return len(STATE_PARTS[self.cell])

    def layer_input_size(self, k: int) -> int:
        return self.n_inputs if k == 0 else self.hidden_size

    @cached_property
    def tensors(self) -> tuple:
        """((name, shape, offset), ...) in packed (= PyTorch state_dict) order."""
        out = []
        off = 0
        GH, H = self.G * self.hidden_size, self.hidden_size
        for k in range(self.n_layers):
            for name, shape in (
                (f"weight_ih_l{k}", (GH, self.layer_input_size(k))),
                (f"weight_hh_l{k}", (GH, H)),
                (f"bias_ih_l{k}", (GH,)),
                (f"bias_hh_l{k}", (GH,)),
            ):
                out.append((name, shape, off))
                off += int(np.prod(shape))
        for name, shape in (("head.weight", (self.n_outputs, H)), ("head.bias", (self.n_outputs,))):
            out.append((name, shape, off))
            off += int(np.prod(shape))
        return tuple(out)

    @property
    def n_params(self) -> int:
        name, shape, off = self.tensors[-1]
        return off + int(np.prod(shape))

    @cached_property
    def offsets(self) -> np.ndarray:
        """int64 (L, 4): offsets of weight_ih, weight_hh, bias_ih, bias_hh per layer."""
        off = np.zeros((self.n_layers, 4), dtype=np.int64)
        for k in range(self.n_layers):
            for j in range(4):
                off[k, j] = self.tensors[4 * k + j][2]
        return off

    @property
    def head_offsets(self) -> tuple[int, int]:
        """(offset of head.weight, offset of head.bias)."""
        return self.tensors[-2][2], self.tensors[-1][2]

    def views(self, theta: np.ndarray) -> dict:
        """Name -> view into ``theta`` (writes go through to ``theta``)."""
        return {name: theta[off:off + int(np.prod(shape))].reshape(shape)
                for name, shape, off in self.tensors}

    def state_shape(self, n_series: int) -> tuple:
        return (n_series, self.n_layers, self.S, self.hidden_size)

    def describe(self) -> dict:
        """A JSON-able description stored in checkpoints."""
        return {
            "cell": self.cell, "n_inputs": self.n_inputs, "hidden_size": self.hidden_size,
            "n_outputs": self.n_outputs, "n_layers": self.n_layers,
            "gates": list(GATES[self.cell]), "state_parts": list(STATE_PARTS[self.cell]),
            "tensors": [[name, list(shape), off] for name, shape, off in self.tensors],
        }

    # -- initialisation -------------------------------------------------------------
    def init_params(self, seed: int, dtype) -> np.ndarray:
        """PyTorch's default initialisation, drawn in float64 from ``seed`` then cast,
        so every backend and dtype starts from the same weights.

        nn.LSTM/GRU: every tensor U(-1/sqrt(H), 1/sqrt(H)); nn.Linear(H, O): weight
        and bias U(-1/sqrt(H), 1/sqrt(H)) (kaiming_uniform(a=sqrt(5)) reduces to that).
        """
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.hidden_size)
        theta = rng.uniform(-bound, bound, size=self.n_params)
        return theta.astype(dtype)

    # -- PyTorch names ----------------------------------------------------------------
    def to_state_dict(self, theta: np.ndarray) -> dict:
        return {name: v.copy() for name, v in self.views(np.asarray(theta)).items()}

    def from_state_dict(self, d, dtype) -> np.ndarray:
        """Pack a PyTorch-named dict (NumPy arrays or torch tensors) into a new theta.

        Every key must be present with exactly the expected shape; extra keys are
        refused too, so a foreign model is not half-loaded silently.
        """
        from streamlstm.errors import InputError

        if not hasattr(d, "keys"):
            raise InputError(f"load_state_dict expects a dict of arrays, got {type(d).__name__}")
        theta = np.empty(self.n_params, dtype=dtype)
        expected = {name for name, _, _ in self.tensors}
        extra = sorted(set(d.keys()) - expected)
        if extra:
            raise InputError(
                f"state_dict has unexpected key {extra[0]!r} (this model is a {self.n_layers}-layer "
                f"{self.cell.upper()} with keys {sorted(expected)}); remove it or build a matching model")
        for name, shape, off in self.tensors:
            if name not in d:
                raise InputError(f"state_dict is missing key {name!r} with shape {shape}")
            v = d[name]
            if hasattr(v, "detach"):  # a torch tensor
                v = v.detach().cpu().numpy()
            v = np.asarray(v)
            if v.shape != tuple(shape):
                raise InputError(
                    f"state_dict[{name!r}] has shape {v.shape}, expected {tuple(shape)} "
                    f"(cell={self.cell}, I={self.n_inputs}, H={self.hidden_size}, "
                    f"O={self.n_outputs}, L={self.n_layers})")
            if not np.issubdtype(v.dtype, np.number) or np.iscomplexobj(v):
                raise InputError(f"state_dict[{name!r}] has dtype {v.dtype}; expected real numbers")
            if not np.all(np.isfinite(v)):
                bad = np.argwhere(~np.isfinite(v))[0]
                raise InputError(f"state_dict[{name!r}] has non-finite value {v[tuple(bad)]} at "
                                 f"index {tuple(int(b) for b in bad)}")
            theta[off:off + v.size] = v.reshape(-1)
        return theta


def new_series_arrays(layout: Layout, n_series: int, k2: int, dtype) -> dict:
    """Fresh per-series arrays: zero state, empty windows (docs/spec.md section 1: a fresh
    series starts from zero state)."""
    return {
        "state": np.zeros(layout.state_shape(n_series), dtype=dtype),
        "entry": np.zeros(layout.state_shape(n_series), dtype=dtype),
        "win_u": np.zeros((n_series, k2, layout.n_inputs), dtype=dtype),
        "win_y": np.full((n_series, k2, layout.n_outputs), np.nan, dtype=dtype),
        "win_len": np.zeros(n_series, dtype=INDEX_DTYPE),
        "count": np.zeros(n_series, dtype=INDEX_DTYPE),
    }


def new_model_arrays(layout: Layout, seed: int, dtype) -> dict:
    P = layout.n_params
    return {
        "theta": layout.init_params(seed, dtype),
        "opt_m": np.zeros(P, dtype=dtype),
        "opt_v": np.zeros(P, dtype=dtype),
        "opt_step": np.zeros(1, dtype=INDEX_DTYPE),
    }


def grow_series_arrays(arrays: dict, layout: Layout, n_series: int, k2: int, dtype) -> dict:
    """Return per-series arrays with ``n_series`` slots: old slots copied, new ones fresh."""
    fresh = new_series_arrays(layout, n_series, k2, dtype)
    n_old = arrays["count"].shape[0]
    for name in SERIES_ARRAYS:
        fresh[name][:n_old] = arrays[name]
    return fresh
