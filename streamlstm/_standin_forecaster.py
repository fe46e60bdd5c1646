"""TEMPORARY stand-in for ``streamlstm.multiseries.MultiSeriesForecaster`` (branch
``river``), with the agreed interface, so the stream/CLI layers can be built and
tested before it lands.  Deleted when ``river`` is merged; nothing imports it
except ``stream.make_forecaster``'s fallback.

Input of a row: ``[previous y of its series (0 before the first / when missing),
*features]``; target: ``y``.  No scaling.
"""
from __future__ import annotations

import numpy as np

from . import checkpoint as _ckpt
from .model import OnlineRNN
from .optim import Adam

KIND = "StandinForecaster"


class MultiSeriesForecaster:
    def __init__(self, cell="lstm", hidden_size=32, n_layers=1, k1=16, k2=16, optimizer=None,
                 features=None, horizon=1, backend="cpu", dtype="float64", seed=0):
        self.cell, self.hidden_size, self.n_layers = cell, hidden_size, n_layers
        self.k1, self.k2, self.optimizer = k1, k2, optimizer
        self.features = tuple(features or ())
        self.horizon, self.backend, self.dtype, self.seed = horizon, backend, dtype, seed
        self.net = OnlineRNN(n_inputs=1 + len(self.features), hidden_size=hidden_size, n_outputs=1,
                             n_series=0, cell=cell, n_layers=n_layers, k1=k1, k2=k2,
                             optimizer=optimizer or Adam(lr=1e-3), dtype=dtype, backend=backend,
                             seed=seed)
        self._slot = {}
        self._ids = []
        self._last = np.zeros(0)

    @property
    def series_ids(self):
        return list(self._ids)

    def _slots(self, series_ids):
        out = np.empty(len(series_ids), dtype=np.int64)
        for r, s in enumerate(series_ids):
            k = self._slot.get(s)
            if k is None:
                k = self._slot[s] = len(self._ids)
                self._ids.append(s)
            out[r] = k
        if len(self._ids) > self.net.n_series:
            self.net.resize(len(self._ids))
            self._last = np.concatenate([self._last, np.zeros(len(self._ids) - self._last.size)])
        return out

    def predict_learn(self, series_ids, y, X=None):
        y = np.asarray(y, dtype=np.float64)
        R = y.shape[0]
        slots = self._slots(series_ids)
        F = len(self.features)
        Xa = np.zeros((R, F)) if X is None else np.asarray(X, dtype=np.float64).reshape(R, F)
        out = np.empty((R, self.horizon))
        if self.horizon == 1:
            # Inputs depend on the previous row of the same series: build them sequentially.
            U = np.empty((R, 1 + F))
            last = self._last
            for r in range(R):
                s = slots[r]
                U[r, 0] = last[s]
                if not np.isnan(y[r]):
                    last[s] = y[r]
            U[:, 1:] = Xa
            out[:, 0] = self.net.step_rows(slots, U, y.reshape(R, 1))[:, 0]
            return out
        for r in range(R):
            s = slots[r]
            u = np.concatenate([[self._last[s]], Xa[r]]).reshape(1, -1)
            yh, st = self.net.predict(u, state=self.net.get_state([s]))
            out[r, 0] = yh[0, 0]
            for j in range(1, self.horizon):
                u = np.concatenate([[yh[0, 0]], Xa[r]]).reshape(1, -1)
                yh, st = self.net.predict(u, state=st)
                out[r, j] = yh[0, 0]
            self.net.step_rows([s], np.concatenate([[self._last[s]], Xa[r]]).reshape(1, -1),
                               y[r:r + 1].reshape(1, 1))
            if not np.isnan(y[r]):
                self._last[s] = y[r]
        return out

    def forecast(self, horizon, series=None, xs=None):
        ids = self._ids if series is None else list(series)
        out = {}
        F = len(self.features)
        for s in ids:
            k = self._slot[s]
            st = self.net.get_state([k])
            prev = self._last[k]
            vals = []
            for j in range(horizon):
                x = np.zeros(F) if xs is None else np.asarray(xs[j], dtype=np.float64).reshape(F)
                yh, st = self.net.predict(np.concatenate([[prev], x]).reshape(1, -1), state=st)
                prev = yh[0, 0]
                vals.append(prev)
            out[s] = np.array(vals)
        return out

    def save(self, path, extra_meta=None, extra_arrays=None):
        arrays = {f"net.{k}": v for k, v in self.net.arrays().items()}
        arrays["last"] = self._last
        for k, v in (extra_arrays or {}).items():
            arrays[f"extra.{k}"] = v
        meta = {"net": {"config": self.net.config(), "layout": self.net.layout.describe()},
                "features": list(self.features), "horizon": self.horizon,
                "ids": [i if isinstance(i, str) else int(i) for i in self._ids],
                "extra": extra_meta or {}}
        _ckpt.write(path, KIND, meta, arrays)

    @classmethod
    def load(cls, path, backend=None):
        meta, arrays = _ckpt.read(path, KIND)
        net = OnlineRNN.from_checkpoint_parts(
            meta["net"], {k[4:]: v for k, v in arrays.items() if k.startswith("net.")},
            backend=backend, source=str(path))
        self = cls.__new__(cls)
        cfg = net.config()
        self.cell, self.hidden_size, self.n_layers = cfg["cell"], cfg["hidden_size"], cfg["n_layers"]
        self.k1, self.k2, self.optimizer = cfg["k1"], cfg["k2"], net.optimizer
        self.features, self.horizon = tuple(meta["features"]), meta["horizon"]
        self.backend, self.dtype, self.seed = net.backend, cfg["dtype"], cfg["seed"]
        self.net = net
        self._ids = list(meta["ids"])
        self._slot = {s: k for k, s in enumerate(self._ids)}
        self._last = arrays["last"]
        extra = {k[6:]: v for k, v in arrays.items() if k.startswith("extra.")}
        return self, meta["extra"], extra
