"""A PyTorch twin of docs/spec.md sections 3-4, written independently of
streamlstm's code: torch's own ``nn.LSTM``/``nn.GRU``/``nn.Linear`` equations,
autograd for the gradient, ``clip_grad_norm_`` and ``torch.optim`` for the
update.  The acceptance checks compare against exactly this."""
from __future__ import annotations

import numpy as np
import torch


class TorchTwin:
    def __init__(self, net, state_dict=None):
        """Mirror an ``OnlineRNN`` ``net`` (its config and current weights)."""
        cfg = net.config()
        self.k1, self.k2 = cfg["k1"], cfg["k2"]
        I, H, O, L = cfg["n_inputs"], cfg["hidden_size"], cfg["n_outputs"], cfg["n_layers"]
        self.cell = cfg["cell"]
        dt = torch.float64 if cfg["dtype"] == "float64" else torch.float32
        self.dt = dt
        rnn_cls = torch.nn.LSTM if self.cell == "lstm" else torch.nn.GRU
        self.rnn = rnn_cls(I, H, L, dtype=dt)
        self.head = torch.nn.Linear(H, O, dtype=dt)
        sd = state_dict if state_dict is not None else net.state_dict()
        with torch.no_grad():
            for name, p in self.rnn.named_parameters():
                p.copy_(torch.from_numpy(np.asarray(sd[name])))
            self.head.weight.copy_(torch.from_numpy(np.asarray(sd["head.weight"])))
            self.head.bias.copy_(torch.from_numpy(np.asarray(sd["head.bias"])))
        params = list(self.rnn.parameters()) + list(self.head.parameters())
        oc = cfg["optimizer"]
        if oc["name"] == "SGD":
            self.opt = torch.optim.SGD(params, lr=oc["lr"], momentum=oc["momentum"])
        else:
            self.opt = torch.optim.Adam(params, lr=oc["lr"], betas=tuple(oc["betas"]),
                                        eps=oc["eps"], weight_decay=oc["weight_decay"])
        self.params = params
        self.clip = cfg["clip_norm"]
        self.grad_norms = []
        N = cfg["n_series"]
        S = 2 if self.cell == "lstm" else 1
        self.state = [torch.zeros(S, L, 1, H, dtype=dt) for _ in range(N)]
        self.entry = [torch.zeros(S, L, 1, H, dtype=dt) for _ in range(N)]
        self.win = [[] for _ in range(N)]
        self.count = [0] * N
        self.n_updates = 0

    def _hx(self, s):
        return (s[0], s[1]) if self.cell == "lstm" else s[0]

    def _pack(self, hx):
        return torch.stack(hx) if self.cell == "lstm" else hx[None]

    def step(self, u, y=None, series=None):
        u = np.asarray(u)
        series = list(range(len(self.state))) if series is None else list(series)
        if y is None:
            y = np.full((len(series), self.head.out_features), np.nan)
        out = []
        with torch.no_grad():
            for j, n in enumerate(series):
                x = torch.from_numpy(np.asarray(u[j], dtype=np.float64)).to(self.dt).view(1, 1, -1)
                o, hx = self.rnn(x, self._hx(self.state[n]))
                self.state[n] = self._pack(hx)
                out.append(self.head(o[0, 0]).numpy().copy())
                self.win[n].append((np.asarray(u[j], dtype=np.float64), np.asarray(y[j], dtype=np.float64)))
                self.count[n] += 1
        due = sorted(n for n in series if self.count[n] % self.k1 == 0)
        if due:
            self._update(due)
        return np.array(out)

    def _update(self, due):
        total = 0.0
        M = 0
        new_entries = {}
        for n in due:
            T = len(self.win[n])
            X = torch.tensor(np.array([w[0] for w in self.win[n]]), dtype=self.dt).unsqueeze(1)
            Yt = torch.tensor(np.array([w[1] for w in self.win[n]]), dtype=self.dt)
            o, _ = self.rnn(X, self._hx(self.entry[n]))
            yhat = self.head(o[:, 0])
            m = ~torch.isnan(Yt)
            m[:max(0, T - self.k1)] = False
            diff = torch.where(m, yhat - torch.nan_to_num(Yt), torch.zeros_like(yhat))
            total = total + (diff ** 2).sum()
            M += int(m.sum())
            d = max(0, T + self.k1 - self.k2)
            if d > 0:
                with torch.no_grad():   # state after d rows, weights before the update
                    _, hx = self.rnn(X[:d], self._hx(self.entry[n]))
                new_entries[n] = (d, self._pack(hx))
        if M > 0:
            self.opt.zero_grad()
            (total / M).backward()
            if self.clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
                self.grad_norms.append(float(norm))     # before clipping
            self.opt.step()
            self.n_updates += 1
        for n, (d, st) in new_entries.items():
            self.win[n] = self.win[n][d:]
            self.entry[n] = st

    def state_dict(self):
        sd = {k: v.detach().numpy().copy() for k, v in self.rnn.state_dict().items()}
        sd["head.weight"] = self.head.weight.detach().numpy().copy()
        sd["head.bias"] = self.head.bias.detach().numpy().copy()
        return sd

    def live_state(self, n):
        """(L, S, H) like OnlineRNN.get_state()[i]."""
        return self.state[n][:, :, 0, :].permute(1, 0, 2).numpy()
