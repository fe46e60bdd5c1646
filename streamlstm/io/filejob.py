"""A resumable forecasting run over files - what ``streamlstm run`` executes.

Phases: optional history replay (``--replay``: warms weights and states, scored
nowhere, written only with ``--write-replay``), then the live source.  Rows go
through one ``StreamRunner``; forecasts go to ``--out``.

With a checkpoint directory the run is restartable at any instant::

    DIR/checkpoint.slstm    model + id map + runner (policy state, metrics) +
                            position (phase, row) + the number of output parts
    DIR/parts/part-*.parquet  the forecasts written so far, one part per checkpoint

Every checkpoint first renames the open output part into place, then writes the
checkpoint file atomically (``checkpoint.write``).  On start, an existing
checkpoint is checked against this command (same options, same input files),
output parts it does not count are deleted, and reading resumes at its row:
after ``kill -9`` at any instant, the rerun writes exactly the rows the
interrupted run had not committed, with the model state of that moment - the
result equals one uninterrupted run, bit for bit.  When the source is exhausted
the parts are streamed into ``--out`` (atomically) and the checkpoint marked
complete; rerunning a complete run only rewrites ``--out`` if it is missing.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streamlstm.backends import compile_note
from streamlstm.stream.policy import DataError, Policy
from streamlstm.io.dirlock import DirectoryLock
from streamlstm.io.sinks import ForecastFile, PartStore, out_format
from streamlstm.io.files import DEFAULT_BATCH_ROWS, Columns, Dialect, open_source
from streamlstm.stream.batch import forecast_column_names
from streamlstm.stream.runner import StreamRunner, forecaster_class

CKPT_FILE = "checkpoint.slstm"
PARTS_DIR = "parts"
OUT_SERIES, OUT_TIME = "series_id", "timestamp"

# Model options of the CLI (None: the forecaster's default) and their flags.
MODEL_FLAGS = {"cell": "--cell", "hidden_size": "--hidden-size", "n_layers": "--layers",
               "k1": "--k1", "k2": "--k2", "optimizer": "--optimizer", "lr": "--lr",
               "dtype": "--dtype", "seed": "--seed", "lags": "--lags",
               "seasonality": "--seasonality", "scaling": "--scaling", "experts": "--experts"}
MODEL_KEYS = tuple(MODEL_FLAGS)
# What a checkpoint from before an option was written with (its runs had no choice).
LEGACY = {"scaling": "series", "experts": "none"}
# Options whose value changes the results: a resumed run must use the same.
RESULT_KEYS = {
    "series_col": "--series-col", "time_col": "--time-col", "target_col": "--target-col",
    "features": "--features", "horizon": "--horizon", "coverage": "--coverage", **MODEL_FLAGS,
    "on_bad_row": "--on-bad-row", "new_series": "--new-series",
    "metrics_window": "--metrics-window", "replay": "--replay", "write_replay": "--write-replay",
    "init_from": "--init-from", "csv_sep": "--csv-sep", "decimal": "--decimal",
    "time_format": "--time-format",
}


# A checkpoint written under "error" may be resumed with a looser policy.
RELAXABLE = ("on_bad_row", "new_series")


def _fault_point():
    """Fault injection for the crash tests: ``STREAMLSTM_TEST_KILL_AT=point:n`` makes
    the process SIGKILL itself at the n-th passage through ``point`` (one of
    batch, written, part, checkpoint, final); ``point:n:TERM`` sends SIGTERM
    instead (what a service manager sends).  Unset, this is a no-op."""
    spec = os.environ.get("STREAMLSTM_TEST_KILL_AT")
    if not spec:
        return lambda point: None
    want, n, *how = spec.split(":")
    sig = signal.SIGTERM if how == ["TERM"] else signal.SIGKILL
    seen = {"n": 0}

    def hit(point):
        if point == want:
            seen["n"] += 1
            if seen["n"] == int(n):
                os.kill(os.getpid(), sig)
    return hit


class JobError(DataError):
    """A run that cannot start or continue as asked (options vs checkpoint, ...)."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the run stopped at a batch boundary (checkpointed if it had
    a directory); ``signum`` is the signal that asked."""

    def __init__(self, row, phase, checkpointed, signum=signal.SIGINT):
        super().__init__(f"interrupted at {phase} row {row}")
        self.row, self.phase, self.checkpointed = row, phase, checkpointed
        self.signum = signum


@dataclass
class JobConfig:
    source: str
    columns: Columns = Columns()
    fmt: str | None = None
    replay: str | None = None
    write_replay: bool = False
    out: str | None = None
    checkpoint: str | None = None
    every_rows: int | None = None
    every_seconds: float | None = 60.0
    init_from: str | None = None
    horizon: int = 1
    coverage: float | None = None    # prediction intervals (None: none; the CLI says 0.9)
    backend: str = "cpu"
    # MultiSeriesForecaster options the user set (cell, hidden_size, n_layers, k1, k2,
    # optimizer, lr, dtype, seed, lags, seasonality, scaling, experts); the rest take its
    # defaults.
    model: dict = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    metrics_window: int = 1000
    batch_rows: int = DEFAULT_BATCH_ROWS
    keep_forecasts: bool = False   # keep a Parquet copy of all forecasts (for the plot)
    dialect: Dialect = Dialect()   # how text is written (--csv-sep, --decimal, --time-format)
    metrics_out: str | None = None  # one row of metrics per series (--metrics-out)

    def result_config(self):
        return {"series_col": self.columns.series, "time_col": self.columns.time,
                "target_col": self.columns.target, "features": list(self.columns.features),
                "horizon": self.horizon, "coverage": self.coverage,
                **{k: _jsonable(self.model.get(k)) for k in MODEL_KEYS},
                "on_bad_row": self.policy.on_bad_row,
                "new_series": self.policy.new_series, "metrics_window": self.metrics_window,
                "replay": None if self.replay is None else os.path.basename(self.replay),
                "write_replay": self.write_replay,
                "init_from": None if self.init_from is None else os.path.abspath(self.init_from),
                # None when not given: checkpoints from before these options still match.
                "csv_sep": self.dialect.sep,
                "decimal": None if self.dialect.decimal == "." else self.dialect.decimal,
                "time_format": self.dialect.time_format}

    def make_model(self):
        from streamlstm.forecast.multiseries import DEFAULT_LR
        from streamlstm.core.optim import SGD, Adam
        kw = {k: v for k, v in self.model.items() if v is not None and k not in ("optimizer", "lr")}
        name, lr = self.model.get("optimizer"), self.model.get("lr")
        if name is not None or lr is not None:
            if (name or "adam") == "adam":
                kw["optimizer"] = Adam(lr=lr) if lr is not None else Adam(lr=DEFAULT_LR)
            else:
                kw["optimizer"] = SGD(lr=lr) if lr is not None else SGD()
        M = forecaster_class()
        return M(features=list(self.columns.features) or None, horizon=self.horizon,
                 coverage=self.coverage, backend=self.backend, **kw)


class NullProgress:
    def start(self, label, total, done=0):
        pass

    def note_if_slow(self, message):
        return contextlib.nullcontext()

    def update(self, rows, n_series):
        pass

    def finish(self):
        pass


@dataclass
class JobResult:
    runner: StreamRunner
    rows: dict                  # phase -> rows read this invocation
    seconds: float
    resumed_at: tuple | None    # (phase, row) when resumed from a checkpoint
    already_complete: bool
    out_rows: int | None
    forecast_files: list        # Parquet files holding every written forecast (for plots)
    compile_seconds: float = 0.0    # of ``seconds``: compiling the kernels before the rows


def checkpoint_path(directory):
    """``--checkpoint`` names a directory; ``inspect`` also accepts the file."""
    if os.path.isdir(directory) or not os.path.exists(directory):
        return os.path.join(directory, CKPT_FILE)
    return directory


class FileJob:
    def __init__(self, cfg: JobConfig, progress=None):
        self.cfg = cfg
        self.progress = progress or NullProgress()
        self._tmpdir = None
        self._stop = False
        self._fault = _fault_point()

    # -- setup -----------------------------------------------------------------------
    def _open_sources(self):
        cfg = self.cfg
        srcs = {}
        if cfg.replay:
            srcs["replay"] = open_source(cfg.replay, cfg.columns, cfg.fmt, cfg.dialect)
        srcs["live"] = open_source(cfg.source, cfg.columns, cfg.fmt, cfg.dialect)
        return srcs

    def new_runner(self):
        """The runner a fresh run starts from: a new model, or (``--init-from``) the
        model, series and per-series bookkeeping of a checkpoint, with fresh metrics."""
        cfg = self.cfg
        if cfg.init_from:
            path = checkpoint_path(cfg.init_from)
            runner, _, meta = StreamRunner.restore(path, backend=cfg.backend)
            old = (meta or {}).get("config", {})
            for key in ("features", "horizon", "target_col"):
                if key in old and old[key] != cfg.result_config()[key]:
                    raise JobError(f"{path}: that model was trained with {RESULT_KEYS[key]} "
                                   f"{_show(old[key])}, this command says "
                                   f"{_show(cfg.result_config()[key])}; use the same",
                                   origin=path)
            if runner.model.coverage != cfg.coverage:
                raise JobError(f"{path}: that model makes {_coverage(runner.model.coverage)}, "
                               f"this command asks for {_coverage(cfg.coverage)}; pass "
                               f"--coverage {runner.model.coverage or 0}", origin=path)
            self._check_init_model(path, old)
            fresh = runner.carry_over(cfg.policy, cfg.metrics_window)
            fresh.mark_history()
            return fresh
        return StreamRunner(cfg.make_model(), cfg.policy, cfg.metrics_window)

    def _check_init_model(self, path, old):
        """``--init-from`` continues that model as it is: refuse model options that
        differ from it (naming each), then record its options as this run's."""
        model = self.cfg.model
        differ = [f"{MODEL_FLAGS[k]} {_show(_jsonable(model[k]))} (the model has "
                  f"{_show(old.get(k, LEGACY.get(k)))})" for k in MODEL_KEYS
                  if model.get(k) is not None and (k in old or k in LEGACY)
                  and _jsonable(model[k]) != old.get(k, LEGACY.get(k))]
        if differ:
            raise JobError(f"{path}: --init-from continues that model as it is, but this "
                           f"command also sets {'; '.join(differ)}; drop those options, or "
                           f"train a new model without --init-from", origin=path)
        for k in MODEL_KEYS:
            if model.get(k) is None and old.get(k) is not None:
                model[k] = old[k]

    def _check_resume(self, path, meta, fps):
        cfg = self.cfg
        old = meta.get("config", {})
        new = cfg.result_config()
        for key, flag in RESULT_KEYS.items():
            if key in RELAXABLE and old.get(key) == "error":
                # Every row so far passed the strict policy, so a run with a looser one
                # would have done exactly the same: "fix" a stop by rerunning with skip.
                continue
            if key in MODEL_FLAGS and cfg.init_from and new.get(key) is None:
                continue  # not given: the model's own (recorded when the run began)
            if old.get(key, LEGACY.get(key)) != new.get(key):
                raise JobError(
                    f"{path}: this checkpoint was written by a run with {flag} "
                    f"{_show(old.get(key), key)}, this command has {flag} "
                    f"{_show(new.get(key), key)}; rerun "
                    f"with the checkpoint's options to resume, or pass a new --checkpoint "
                    f"directory (or delete {os.path.dirname(path) or path}) to start over",
                    origin=path)
        for phase, fp in fps.items():
            was = meta.get("sources", {}).get(phase)
            if was is None or was["fingerprint"] != fp:
                what = "history (--replay)" if phase == "replay" else "source (--source)"
                name = cfg.replay if phase == "replay" else cfg.source
                before = "" if was is None else f" (it was {was['path']}, {describe_fingerprint(was['fingerprint'])}; now {describe_fingerprint(fp)})"
                raise JobError(
                    f"{path}: the checkpoint belongs to a run over another {what} than {name}"
                    f"{before}; rerun with the original file to resume, or pass a new "
                    f"--checkpoint directory to start over (use --init-from {path} to start "
                    f"from its model)", origin=path)

    # -- the run ---------------------------------------------------------------------
    def run(self) -> JobResult:
        cfg = self.cfg
        t0 = time.perf_counter()
        srcs = self._open_sources()             # schema problems stop us here: nothing touched
        fps = {k: s.fingerprint() for k, s in srcs.items()}
        ckfile = os.path.join(cfg.checkpoint, CKPT_FILE) if cfg.checkpoint else None
        with contextlib.ExitStack() as hold:
            if ckfile:
                hold.enter_context(DirectoryLock(cfg.checkpoint))
            return self._run_locked(srcs, fps, ckfile, t0)

    def _run_locked(self, srcs, fps, ckfile, t0):
        cfg = self.cfg
        runner, at, state, resumed_at = self._start(ckfile, fps, list(srcs))
        self.runner = runner
        m = runner.model
        with self.progress.note_if_slow(f"compiling the {m.cell}/{m.dtype} kernels for the "
                                        f"{m.backend} backend (first run only: Numba caches "
                                        f"them; `streamlstm warmup` compiles ahead)"), \
                compile_note.quiet():
            compile_seconds = m.compile_kernels()
        sources_meta = {k: {"path": os.fspath(s.name), "fingerprint": fps[k]} for k, s in srcs.items()}
        out = _Outputs(cfg, ckfile, state, runner, sources_meta, self._fault)
        self._tmpdir = out.tmpdir
        rows_read = {p: 0 for p in srcs}
        old_handlers = self._catch_signals()
        try:
            if not state["done"]:
                self._read_phases(srcs, at, out, rows_read)
            already_complete = state["done"] and resumed_at is not None
            out_rows, files = out.finish(at)
        except BaseException:
            out.abort()
            raise
        finally:
            self._restore_signals(old_handlers)
        return JobResult(runner=runner, rows=rows_read, seconds=time.perf_counter() - t0,
                         resumed_at=resumed_at, already_complete=already_complete,
                         out_rows=out_rows, forecast_files=[f for f in files if os.path.exists(f)],
                         compile_seconds=compile_seconds)

    def _start(self, ckfile, fps, phases):
        """The runner and read position: from the checkpoint (checked against this
        command), or new.  ``at`` is a mutable ``[phase, row]``."""
        cfg = self.cfg
        if ckfile and os.path.exists(ckfile):
            runner, pos, meta = StreamRunner.restore(ckfile, backend=cfg.backend)
            self._check_resume(ckfile, meta, fps)
            runner.policy = cfg.policy
            at = [pos["phase"], int(pos["row"])]
            state = {"parts": int(meta["parts"]), "done": bool(meta["done"]),
                     "out": meta.get("out")}
            return runner, at, state, tuple(at)
        state = {"parts": 0, "done": False, "out": None}
        return self.new_runner(), [phases[0], 0], state, None

    def _read_phases(self, srcs, at, out, rows_read):
        """Read every phase from ``at`` on, writing forecasts and checkpointing
        when due; ``at`` follows the read position."""
        cfg, runner = self.cfg, self.runner
        phases = list(srcs)
        for ph in phases[phases.index(at[0]):]:
            if ph != at[0]:
                at[:] = [ph, 0]
            row = at[1]
            if ph == "live" and row == 0 and (cfg.replay or cfg.init_from):
                runner.mark_history()  # series first seen from here on are "new"
            write = ph == "live" or cfg.write_replay
            src = srcs[ph]
            self.progress.start(("replay " if ph == "replay" else "") + source_label(src.name),
                                src.total_rows, row)
            self.progress.update(row, runner.n_series)
            out.due_reset()
            for batch in src.batches(start=row, batch_rows=cfg.batch_rows):
                fc = runner.process(batch, score=(ph == "live"))
                self._fault("batch")
                if write:
                    out.write(fc)
                self._fault("written")
                at[1] = batch.position
                rows_read[ph] += len(batch)
                self.progress.update(at[1], runner.n_series)
                if out.due(len(batch)):
                    out.snapshot(at)
                if self._stop:
                    out.snapshot(at)
                    raise Interrupted(at[1], ph, out.ckfile is not None, self._stop)
            self.progress.finish()

    # -- Ctrl-C / SIGTERM: stop at the next batch boundary (checkpointed) -----------------
    # SIGTERM is what systemd, Docker and Kubernetes send: it stops the run like
    # Ctrl-C.  A second Ctrl-C stops at once (the checkpoint on disk stays valid).
    def _catch_signals(self):
        def handler(signum, frame):
            if self._stop and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop = signum
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: the caller handles signals
                pass
        return old

    @staticmethod
    def _restore_signals(old):
        for sig, handler in old.items():
            signal.signal(sig, handler)

    def cleanup(self):
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


class _Outputs:
    """Where a run's forecasts go: checkpointed parts (with a checkpoint
    directory), or straight into ``--out`` plus, for the plot, a Parquet copy."""

    def __init__(self, cfg, ckfile, state, runner, sources_meta, fault):
        self.cfg, self.ckfile, self.state, self.runner = cfg, ckfile, state, runner
        self.sources_meta, self.fault = sources_meta, fault
        self.parts = self.direct = self.copy = None
        self.tmpdir = None
        if ckfile:
            self.parts = PartStore(os.path.join(cfg.checkpoint, PARTS_DIR))
            self.parts.reset_to(state["parts"])
        else:
            if cfg.out:
                self.direct = ForecastFile(cfg.out)
            if cfg.keep_forecasts and (not cfg.out or out_format(cfg.out) != "parquet"):
                self.tmpdir = tempfile.mkdtemp(prefix="streamlstm-")
                self.copy = ForecastFile(os.path.join(self.tmpdir, "forecasts.parquet"))
        self.writers = [w for w in (self.parts, self.direct, self.copy) if w is not None]
        self.due_reset()

    def write(self, fc):
        if self.writers and len(fc):
            table = fc.to_arrow(OUT_SERIES, OUT_TIME)
            for w in self.writers:
                w.write(table)

    def due_reset(self):
        self.last_ck, self.since = time.monotonic(), 0

    def due(self, n_rows):
        """Is a checkpoint due after ``n_rows`` more rows (``--checkpoint-every``)?"""
        cfg = self.cfg
        self.since += n_rows
        return bool(self.ckfile) and (
            bool(cfg.every_rows and self.since >= cfg.every_rows)
            or (cfg.every_seconds is not None
                and time.monotonic() - self.last_ck >= cfg.every_seconds))

    def snapshot(self, at):
        """Commit the open part, then write the checkpoint at ``at`` (phase, row)."""
        if not self.ckfile:
            return
        state, cfg = self.state, self.cfg
        state["parts"] = self.parts.commit()
        self.fault("part")
        self.runner.snapshot(
            self.ckfile, position={"phase": at[0], "row": int(at[1])},
            meta={"config": cfg.result_config(), "sources": self.sources_meta,
                  "parts": state["parts"], "done": state["done"], "out": state["out"],
                  "saved_at": time.time()})
        self.fault("checkpoint")
        self.due_reset()

    def finish(self, at):
        """Close the outputs: ``(rows written to --out or None, Parquet files)``."""
        cfg, state = self.cfg, self.state
        if self.ckfile and not state["done"]:
            state["done"] = True
            self.snapshot(at)
        if self.parts is not None:
            out_rows = None
            out_abs = os.path.abspath(cfg.out) if cfg.out else None
            if out_abs and (state["out"] != out_abs or not os.path.exists(cfg.out)):
                f = ForecastFile(cfg.out)
                self.parts.finish(f, on_batch=lambda: self.fault("final"))
                out_rows = f.rows
                state["out"] = out_abs
                self.snapshot(at)
            return out_rows, self.parts.paths()
        out_rows = None
        schema = _empty_schema(self.runner, cfg)
        if self.direct is not None:
            self.direct.close(schema=schema)
            out_rows = self.direct.rows
        if self.copy is not None:
            self.copy.close(schema=schema)
        files = [self.copy.path] if self.copy is not None else (
            [cfg.out] if cfg.out and out_format(cfg.out) == "parquet" else [])
        return out_rows, files

    def abort(self):
        for w in self.writers:
            w.abort()


def _empty_schema(runner, cfg):
    fields = [(OUT_SERIES, pa.string()), (OUT_TIME, pa.int64()), ("y", pa.float64())]
    fields += [(n, pa.float64()) for n in forecast_column_names(cfg.horizon,
                                                                 cfg.coverage is not None)]
    return pa.schema(fields)


def _coverage(c):
    return "no intervals (--coverage 0)" if c is None else f"{c:g} intervals (--coverage {c:g})"


def read_curves(files, series, points, time_kind=None):
    """The last ``points`` rows of each of ``series`` from forecast Parquet files:
    ``{id: (time, y, yhat[, lo, hi])}`` (the band when the files have one); reads
    batch by batch, keeps only those series."""
    want = pa.array(list(series))
    got = {s: [] for s in series}
    for path in files:
        pf = pq.ParquetFile(path)
        ids_type = pf.schema_arrow.field(OUT_SERIES).type
        try:
            value_set = want.cast(ids_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        band = ["yhat_lo", "yhat_hi"] if "yhat_lo" in pf.schema_arrow.names else []
        for rb in pf.iter_batches(columns=[OUT_SERIES, OUT_TIME, "y", "yhat", *band]):
            mask = pc.is_in(rb.column(0), value_set=value_set)
            if not pc.any(mask).as_py():
                continue
            sub = rb.filter(mask)
            ids = sub.column(0).to_pylist()
            cols = [sub.column(c).to_numpy(zero_copy_only=False)
                    for c in range(1, sub.num_columns)]
            ids_arr = np.array(ids, dtype=object)
            for s in got:
                m = ids_arr == s
                if m.any():
                    got[s].append(tuple(c[m] for c in cols))
                    # Keep memory bounded: only the tail is drawn.
                    if sum(len(c[0]) for c in got[s]) > 4 * points:
                        got[s] = [_tail(got[s], points)]
    return {s: _tail(chunks, points) for s, chunks in got.items() if chunks}


def _tail(chunks, points):
    k = min(len(c) for c in chunks)     # the band only if every file had one
    return tuple(np.concatenate([c[i] for c in chunks])[-points:] for i in range(k))


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


def _show(v, key=None):
    if key == "coverage" and v is None:     # off (also a checkpoint from before intervals)
        return "0"
    if isinstance(v, list):
        return ",".join(map(str, v)) if v else "(none)"
    if v is None:
        return "(not given)"
    return str(v)


def write_series_metrics(path, runner):
    """``--metrics-out``: one row per series (``series_id, rows, MAE, RMSE, SMAPE,
    naive_MAE``; with intervals ``bands, coverage, width`` of the one-step
    bands; with ``--horizon H`` ``rows_hH, MAE_hH, RMSE_hH, SMAPE_hH, naive_MAE_hH``
    of steps 2..H; with experts ``lead_expert``, the one with the largest weight in
    the series' next one-step forecast, and ``weight_<expert>`` each weight) to a
    .parquet/.csv/.csv.gz/.jsonl file, atomically; returns the row count.
    The values are the run's River metrics (``ForecastMetrics.per_series_table``)."""
    table = runner.metrics.per_series_table()
    n = len(table["rows"])
    ids = pa.array(list(runner.ids[:n]))
    cols = {OUT_SERIES: ids}
    for k, v in table.items():
        kind = pa.int64() if k.startswith(("bands", "rows")) else pa.float64()
        cols[k] = pa.array(v, type=kind)
    weights = runner.model.weight_table()
    if weights is not None:        # which expert leads each series, and every weight
        names, W = weights
        w1 = W[:n, 0, :]
        cols["lead_expert"] = pa.array([names[k] for k in w1.argmax(axis=1)], type=pa.string())
        for k, name in enumerate(names):
            cols[f"weight_{name}"] = pa.array(w1[:, k], type=pa.float64())
    f = ForecastFile(path)
    f.write(pa.table(cols))
    f.close()
    return n


def source_label(name):
    """A short name of a source for progress bars and titles: a file's or a
    directory's base name (``lake/`` -> ``lake``), a glob as written."""
    return os.path.basename(os.fspath(name).rstrip("/" + os.sep)) or os.fspath(name)


def describe_fingerprint(fp):
    """A source file's fingerprint in words (size, rows) for messages."""
    bits = [f"{len(fp['files']):,} files"] if "files" in fp else []
    bits += [f"{fp['size']:,} bytes"] if "size" in fp else []
    if "rows" in fp:
        bits.append(f"{fp['rows']:,} rows")
    return ", ".join(bits) or fp.get("format", "?")
