"""The source-agnostic stream runner: rows in, one-step forecasts out, learning
as it goes - with the data policy, River metrics and an exact snapshot.

A ``StreamRunner`` owns one many-series forecaster (``MultiSeriesForecaster``:
weights, per-series state, id -> slot map), the per-series bookkeeping the policy
needs (latest accepted timestamp), the metrics, and nothing about where rows
come from.  Any source - a Parquet/CSV file (``sources``), a pandas frame, one
Kafka partition - hands it ``RowBatch`` es in arrival order::

    runner = StreamRunner(model)
    for batch in source.batches(start=position):
        fc = runner.process(batch)          # forecasts made before each row's y
        ...write fc...
        runner.snapshot(path, position=batch.position)   # atomic, when due

``snapshot`` writes model, runner and the caller's ``position`` (a file row
number, a Kafka offset) into ONE checkpoint file atomically, so a crash leaves
either the old or the new snapshot - never a model that has seen rows the
position says it has not.  ``restore`` returns ``(runner, position, meta)``.
Replaying the same rows from the restored position gives bit-identical
forecasts (the forecaster is batching-invariant: micro-batched = row by row).
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from streamlstm.errors import CheckpointError, InputError
from streamlstm.forecast.intervals import CoverageTally
from streamlstm.stream.policy import (DUPLICATE_TIME, MISSING_ID, NEW_SERIES, OUT_OF_ORDER, Policy, Problem,
                     order_codes, raise_first, stateless_problems)
from streamlstm.stream.batch import Forecasts, RowBatch, format_time
from streamlstm.stream.metrics import ForecastMetrics
from streamlstm.stream.spacing import Spacing

RUNNER_VERSION = 2   # 2: metrics as arrays (1 pickled them)
TIME_KINDS = ("datetime", "int", "float")


def compile_kernels():
    """Compile (or load from Numba's cache) the runner's own kernels - the
    time-order check and the spacing tracker - for both time types a run has
    (int64: datetimes and integers; float64), as ``streamlstm warmup`` does."""
    for dtype in (np.int64, np.float64):
        t = np.zeros(1, dtype=dtype)
        order_codes(np.zeros(1, dtype=np.int64), t, t.copy(), np.zeros(1, dtype=bool))
        Spacing().update(np.zeros(1, dtype=np.int64), t, t[:0], np.zeros(0, dtype=bool))


def forecaster_class():
    """The many-series forecaster a runner drives (imported on first use)."""
    from streamlstm.forecast.multiseries import MultiSeriesForecaster
    return MultiSeriesForecaster


class StreamRunner:
    """One forecaster driven by a stream of ``RowBatch`` es (module docstring).

    Parameters
    ----------
    model
        A ``MultiSeriesForecaster`` (or anything with its interface).
    policy
        ``policy.Policy``: what to do with bad rows and unseen series.
    metrics_window
        Rows in the rolling metric window (the last ones scored).
    """

    def __init__(self, model, policy=None, metrics_window=1000):
        self.model = model
        self.policy = policy or Policy()
        self.metrics = ForecastMetrics(metrics_window)
        self.ids = []                 # dense index -> series id, first-seen order
        self._index = {}              # series id -> dense index
        self.time_kind = None
        self.last_time = np.zeros(0, dtype=np.int64)  # latest accepted time per series
        self.seen = np.zeros(0, dtype=bool)           # ... and whether there is one
        self.n_rows = np.zeros(0, dtype=np.int64)
        self.last_y = np.zeros(0)
        self.last_yhat = np.zeros((0, 1))  # forecasts made for each series' latest row
        self.known = None             # series count from history; None = no history
        self.rows_in = 0              # rows received (accepted + skipped)
        self.rows_forecast = 0
        self.skipped = Counter()      # policy reason -> rows dropped
        self.intervals = None         # CoverageTally of the scored bands (model with coverage)
        self.spacing = Spacing()      # each series' time step (forecast timestamps)

    # -- bookkeeping --------------------------------------------------------------
    @property
    def n_series(self):
        return len(self.ids)

    def carry_over(self, policy, metrics_window):
        """A new runner on this one's model, series and per-series bookkeeping
        (latest time, row counts, last value and forecast), with its own policy
        and fresh metrics and counters: a run started from a trained model."""
        fresh = type(self)(self.model, policy, metrics_window)
        fresh.ids, fresh._index, fresh.time_kind = self.ids, self._index, self.time_kind
        fresh.last_time, fresh.seen, fresh.n_rows = self.last_time, self.seen, self.n_rows
        fresh.last_y, fresh.last_yhat = self.last_y, self.last_yhat
        fresh.spacing = self.spacing
        return fresh

    def mark_history(self):
        """Declare every series seen so far "history": series first seen after this
        call are subject to ``policy.new_series``."""
        self.known = len(self.ids)

    def _lookup(self, ids):
        """Dense indices for ``ids`` (R,); unseen ids get tentative indices
        ``n_series, n_series + 1, ...`` (returned in ``new``, committed later).
        Null ids map to -1."""
        codes, uniq = pd.factorize(ids, use_na_sentinel=True)
        index = self._index
        n = len(self.ids)
        new = []
        m = np.empty(len(uniq), dtype=np.int64)
        for k, s in enumerate(uniq.tolist() if hasattr(uniq, "tolist") else list(uniq)):
            i = index.get(s)
            if i is None:
                i = n + len(new)
                new.append(s)
            m[k] = i
        dense = np.where(codes >= 0, m[np.maximum(codes, 0)] if m.size else -1, -1)
        return dense.astype(np.int64), new

    def _grow(self, n, horizon):
        if self.last_yhat.ndim != 2 or self.last_yhat.shape[1] != horizon:
            self.last_yhat = np.full((self.last_y.size, horizon), np.nan)
        extra = n - self.last_y.size
        if extra <= 0:
            return
        self.n_rows = np.concatenate([self.n_rows, np.zeros(extra, dtype=np.int64)])
        self.last_y = np.concatenate([self.last_y, np.full(extra, np.nan)])
        self.last_yhat = np.concatenate([self.last_yhat, np.full((extra, horizon), np.nan)])

    # -- the one entry point --------------------------------------------------------
    def process(self, batch: RowBatch, score=True) -> Forecasts:
        """Validate ``batch`` against the policy, then for every accepted row in
        arrival order forecast it before seeing its target and learn from it.
        ``score=False`` leaves the metrics alone (history replay).

        A batch rejected by the policy (``policy.DataError``) changes nothing."""
        R = len(batch)
        kind, dtype = self._time_dtype(batch)
        t = np.ascontiguousarray(batch.time, dtype=dtype)
        pol = self.policy

        # 1. Problems that need no history (source parse problems, inf/NaN values).
        problems = stateless_problems(batch)
        dense, new = self._lookup(batch.ids)
        bad = np.zeros(R, dtype=bool)
        for p in problems:
            bad |= p.mask
        null_id = (dense < 0) & ~bad
        if null_id.any():
            problems.append(Problem(null_id, None, MISSING_ID, lambda r: None))
            bad |= null_id
        # 2. Series that history never saw.
        if self.known is not None and pol.new_series != "allow":
            unseen = (dense >= self.known) & ~bad
            if unseen.any():
                ids = batch.ids
                problems.append(Problem(unseen, None, NEW_SERIES, lambda r: ids[r]))
                bad |= unseen
        # 3. Time order per series, on copies: nothing is committed before the
        #    batch is accepted.
        n_old = len(self.ids)
        last = np.zeros(n_old + len(new), dtype=dtype)
        last[:n_old] = self.last_time
        seen = np.zeros(n_old + len(new), dtype=bool)
        seen[:n_old] = self.seen
        ok_rows = np.flatnonzero(~bad)
        codes = order_codes(dense[ok_rows], t[ok_rows], last, seen)
        if codes.any():
            value = self._time_value(batch)
            detail = self._latest_time_detail(batch, dense, t, ok_rows, codes)
            for code, reason in ((1, DUPLICATE_TIME), (2, OUT_OF_ORDER)):
                m = np.zeros(R, dtype=bool)
                m[ok_rows[codes == code]] = True
                if m.any():
                    problems.append(Problem(m, batch.time_name, reason, value, detail=detail))
                    bad |= m
        # 4. The policy: stop at the first row whose problem is an error, else drop.
        skipped = self._apply_policy(batch, problems) if bad.any() else Counter()
        keep = np.flatnonzero(~bad)

        # 5. Forecast-then-learn, in arrival order.  The forecaster steps the rows with
        #    OnlineRNN.step_rows: micro-batched, yet bit for bit one step per row
        #    (docs/spec.md section 3), so the batch boundaries of a source never show.
        ids_k = batch.ids[keep]
        y_k = np.ascontiguousarray(batch.y[keep], dtype=np.float64)
        X_k = None if batch.X is None else np.ascontiguousarray(batch.X[keep], dtype=np.float64)
        yhat, band = self._predict_learn(ids_k, y_k, X_k)

        # 6. Commit.  New ids are registered in the order of their first accepted
        #    row, which is the order the forecaster gives them slots.
        dense_k = dense[keep]
        if new:
            fresh = dense_k >= n_old
            order = pd.unique(dense_k[fresh])  # tentative indices, first-accepted order
            remap = np.full(len(new), -1, dtype=np.int64)
            remap[order - n_old] = n_old + np.arange(order.size)
            for tentative in order.tolist():
                sid = new[tentative - n_old]
                self._index[sid] = len(self.ids)
                self.ids.append(sid)
            dense_k = dense_k.copy()
            dense_k[fresh] = remap[dense_k[fresh] - n_old]
            last = np.concatenate([last[:n_old], last[order]])
            seen = np.concatenate([seen[:n_old], seen[order]])
        self.time_kind = kind
        self._grow(len(self.ids), yhat.shape[1])
        self.spacing.update(dense_k, t[keep], self.last_time, self.seen)
        self.last_time, self.seen = last, seen
        if keep.size:
            np.add.at(self.n_rows, dense_k, 1)
            u, first = np.unique(dense_k[::-1], return_index=True)  # latest row per series
            pos = keep.size - 1 - first
            self.last_y[u] = y_k[pos]
            self.last_yhat[u] = yhat[pos]
        if score:
            self.metrics.update(dense_k, y_k, yhat[:, 0])
            self.metrics.update_steps(dense_k, y_k, yhat)
            if band is not None:
                if self.intervals is None:
                    self.intervals = CoverageTally(yhat.shape[1])
                self.intervals.update(band.scores)
                self.metrics.update_bands(dense_k, band.scores)
        self.rows_in += R
        self.rows_forecast += int(keep.size)
        self.skipped.update(skipped)
        if band is None:
            return Forecasts(batch, keep, yhat)
        return Forecasts(batch, keep, yhat, band.lo, band.hi)

    def _predict_learn(self, ids, y, X):
        """(yhat (K, h), ``intervals.Band`` or None): the model's forecasts, with
        their intervals when it makes them."""
        if getattr(self.model, "coverage", None) is not None:
            band = self.model.predict_learn(ids, y, X, interval=True)
            return band.yhat, band
        yhat = np.asarray(self.model.predict_learn(ids, y, X), dtype=np.float64)
        if yhat.ndim == 1:              # a forecaster that returns one step as (R,)
            yhat = yhat[:, None]
        return yhat, None

    def _apply_policy(self, batch, problems):
        """Raise the first problem the policy calls an error; else count the rows
        dropped, each under its first problem: ``Counter(reason -> rows)``."""
        pol = self.policy

        def action(p):
            return pol.new_series if p.reason == NEW_SERIES else pol.on_bad_row
        raise_first(batch, [p for p in problems if action(p) == "error"])
        skipped = Counter()
        claimed = np.zeros(len(batch), dtype=bool)
        for p in problems:
            c = int((p.mask & ~claimed).sum())
            if c:
                skipped[p.reason] += c
            claimed |= p.mask
        return skipped

    def _time_dtype(self, batch):
        if batch.time_kind not in TIME_KINDS:
            raise InputError(f"{batch.origin}: time_kind={batch.time_kind!r}; expected one of "
                             f"{TIME_KINDS}")
        if self.time_kind is not None and batch.time_kind != self.time_kind:
            raise InputError(
                f"{batch.origin}: column {batch.time_name!r} holds {batch.time_kind} timestamps "
                f"but earlier rows of this run (history or a previous file) had "
                f"{self.time_kind} timestamps; use one kind of timestamp in every file of a run")
        return batch.time_kind, (np.float64 if batch.time_kind == "float" else np.int64)

    def _latest_time_detail(self, batch, dense, t, ok_rows, codes):
        """For a message: the series' latest accepted time when row r arrived."""
        def detail(r):
            s = dense[r]
            before = ok_rows[(ok_rows < r) & (dense[ok_rows] == s)]
            accepted = before[codes[np.searchsorted(ok_rows, before)] == 0]
            cands = [t[i] for i in accepted]
            if s < self.seen.size and self.seen[s]:
                cands.append(self.last_time[s])
            if not cands:
                return ""
            latest = max(cands)
            return f"series {batch.ids[r]!r} is already at {format_time(latest, batch)!r}"
        return detail

    @staticmethod
    def _time_value(batch):
        tb = (batch.columns or {}).get("time")
        if tb is not None:
            return lambda r: tb[int(r)].as_py()
        return lambda r: batch.time[r].item()

    # -- snapshot / restore -------------------------------------------------------------
    def _meta(self):
        return {"version": RUNNER_VERSION, "policy": self.policy.config(),
                "ids": [s if isinstance(s, str) else int(s) for s in self.ids],
                "time_kind": self.time_kind, "known": self.known,
                "rows_in": self.rows_in, "rows_forecast": self.rows_forecast,
                "skipped": dict(self.skipped), "metrics_window": self.metrics.window,
                "metrics": self.metrics.state()[0]}

    def _arrays(self):
        _, metric_arrays = self.metrics.state()
        iv = {} if self.intervals is None else self.intervals.state()
        return {"last_time": self.last_time, "seen": self.seen, "n_rows": self.n_rows,
                "last_y": self.last_y, "last_yhat": self.last_yhat,
                **{f"spacing.{k}": v for k, v in self.spacing.state().items()},
                **{f"metrics.{k}": v for k, v in metric_arrays.items()},
                **{f"intervals.{k}": v for k, v in iv.items()}}

    def snapshot(self, path, position=None, meta=None):
        """Atomically write model + runner + ``position`` (+ JSON-able ``meta``) to
        ONE checkpoint file (``checkpoint.write``: temp file, fsync, rename)."""
        extra_meta = {"runner": self._meta(), "position": position, "meta": meta or {}}
        extra_arrays = {f"runner.{k}": v for k, v in self._arrays().items()}
        self.model.save(path, extra_meta=extra_meta, extra_arrays=extra_arrays)

    @classmethod
    def restore(cls, path, backend=None):
        """Read a ``snapshot``: returns ``(runner, position, meta)``."""
        M = forecaster_class()
        try:
            model, extra_meta, extra_arrays = M.load_with_extras(path, backend=backend)
        except (KeyError, TypeError) as exc:  # a foreign file that read as a checkpoint
            raise CheckpointError(f"{path}: not a stream checkpoint ({exc!r})") from None
        try:
            rm = extra_meta["runner"]
            arrays = {k[len("runner."):]: v for k, v in extra_arrays.items() if k.startswith("runner.")}
            if rm["version"] != RUNNER_VERSION:
                fix = ("upgrade streamlstm" if rm["version"] > RUNNER_VERSION else
                       "it was written by an older streamlstm (its metrics were pickled): "
                       "finish that run with the version that wrote it, or start afresh "
                       "(--init-from also refuses it)")
                raise CheckpointError(f"{path}: stream checkpoint version {rm['version']}, this "
                                      f"streamlstm reads {RUNNER_VERSION}; {fix}")
            self = cls(model, Policy(**rm["policy"]), rm["metrics_window"])
            self.ids = list(rm["ids"])
            self._index = {s: i for i, s in enumerate(self.ids)}
            self.time_kind = rm["time_kind"]
            self.known = rm["known"]
            self.rows_in, self.rows_forecast = rm["rows_in"], rm["rows_forecast"]
            self.skipped = Counter(rm["skipped"])
            self.last_time, self.seen = arrays["last_time"], arrays["seen"].astype(bool)
            self.n_rows, self.last_y, self.last_yhat = arrays["n_rows"], arrays["last_y"], arrays["last_yhat"]
            self.metrics = ForecastMetrics.from_state(
                rm["metrics"], {k[len("metrics."):]: v for k, v in arrays.items()
                                if k.startswith("metrics.")})
            sp = {k[len("spacing."):]: v for k, v in arrays.items() if k.startswith("spacing.")}
            if sp:      # a checkpoint from before it: spacings are learned afresh
                self.spacing = Spacing.from_state(sp)
            iv = {k[len("intervals."):]: v for k, v in arrays.items() if k.startswith("intervals.")}
            self.intervals = CoverageTally.from_state(iv) if iv else None
        except KeyError as exc:
            raise CheckpointError(f"{path}: a model checkpoint without stream state (missing "
                                  f"{exc}); pass a checkpoint written by a stream run") from None
        return self, extra_meta["position"], extra_meta["meta"]
