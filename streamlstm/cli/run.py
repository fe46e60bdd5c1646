"""``streamlstm run``: forecast a Parquet/CSV (or Kafka) stream of long-format
rows, learning online.

The command is thin: options are checked and turned into a
``filejob.JobConfig``; the work is ``filejob.FileJob`` (or the Kafka job).  User
errors (bad data, options that do not match a checkpoint, unreadable files) are
``click.ClickException``: one ``Error:`` line, exit status 1, no traceback.
Forecast rows go to stdout or ``--out``; progress, the summary and messages go to
stderr.
"""
from __future__ import annotations

import inspect
import os
import re
import signal
import sys

import click
from click.core import ParameterSource

from streamlstm.cli.kafka import dispatch as kafka_dispatch
from streamlstm.cli.kafka import kafka_options
from streamlstm.cli.messages import (INTERVAL_SKIP, fail, format_intervals, format_summary,
                                     format_weights, latest_table, series_label)
from streamlstm.cli.plot import HTML_SUFFIXES, IMAGE_SUFFIXES, plot_forecasts
from streamlstm.cli.progress import Progress
from streamlstm.errors import BackendUnavailableError, CheckpointError, InputError
from streamlstm.forecast.multiseries import DEFAULT_LR as _DEFAULT_LR
from streamlstm.forecast.multiseries import MultiSeriesForecaster
from streamlstm.stream.policy import BAD_ROW_CHOICES, NEW_SERIES_CHOICES, DataError, Policy

# Above this share of skipped rows the end of a run warns (--on-bad-row skip).
SKIP_WARN_SHARE = 0.10
# A compile before the rows longer than this is named in the summary and left out
# of its rate (a first run; a later one loads the kernels in milliseconds).
COMPILE_SHOWN_S = 0.5

# The model options' defaults are the forecaster's own.
_FD = {k: p.default for k, p in inspect.signature(MultiSeriesForecaster).parameters.items()}

DATA_POLICY = """\b
Data policy (rows are long format: one observation per row):
  missing target (empty/NA/NaN)  forecast, state advances, not learned/scored
  infinite target, non-numeric   bad row
  value, non-finite feature,
  missing id or timestamp
  duplicate or out-of-order      bad row (per series, against its latest
  timestamp in a series          accepted timestamp)
  bad row                        --on-bad-row error (stop, name the row) | skip
  series absent from history     --new-series allow (zero state, warm weights)
                                 | skip | error
  missing/non-numeric column,    error before any row is read
  empty or corrupt file
Gaps in time are not filled: a series steps once per row it reports.
A rejected run leaves the checkpoint as it was."""


def _parse_every(value):
    """``--checkpoint-every``: ``100000`` (rows) or ``30s``/``5m``/``1h`` (time)."""
    v = value.strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h|sec|min)?", v)
    if not m:
        raise click.BadParameter(f"{value!r} is neither a row count (100000) nor a duration "
                                 f"(30s, 5m, 1h)", param_hint="--checkpoint-every")
    num, unit = float(m.group(1)), m.group(2)
    if unit is None:
        if num != int(num) or num < 1:
            raise click.BadParameter(f"{value!r}: a row count must be a whole number >= 1",
                                     param_hint="--checkpoint-every")
        return int(num), None
    secs = num * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[unit]
    if secs <= 0:
        raise click.BadParameter(f"{value!r}: the interval must be positive",
                                 param_hint="--checkpoint-every")
    return None, secs


def _split_list(value):
    if not value:
        return ()
    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    return parts


def _numbers(value, flag, kind=int):
    try:
        vals = tuple(kind(v) for v in _split_list(value))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give comma-separated numbers, e.g. 24,168",
                                 param_hint=flag) from None
    return vals


@click.command(epilog=DATA_POLICY)
@click.option("--source", required=True, metavar="FILE|DIR|GLOB|kafka://HOST:PORT/TOPIC",
              help="Live data: a .parquet, .csv or .csv.gz file of long-format rows (series "
                   "id, timestamp, target, optional features), in arrival order; a directory "
                   "or glob of such files, hive partitions included (lake/, "
                   "'lake/date=*/*.parquet'), read as one stream: files in sorted path order; "
                   "or a Kafka topic of JSON messages (with --group; see --sink).")
@click.option("--format", "fmt", type=click.Choice(["auto", "parquet", "csv"]), default="auto",
              show_default=True, help="Input format when the file name does not tell "
                                      "(e.g. --format csv for data.txt).")
@click.option("--csv-sep", default=None, metavar="CHAR",
              help="CSV field separator, e.g. --csv-sep ';'  [default: tab for .tsv, else ,]")
@click.option("--decimal", default=".", show_default=True, type=click.Choice([".", ","]),
              help="Decimal mark of numbers in CSV text, e.g. --decimal , for 3,25.")
@click.option("--time-format", default=None, metavar="STRPTIME",
              help="strptime format of text timestamps, e.g. --time-format '%d.%m.%Y %H:%M' "
                   "[default: ISO 8601 or numbers].")
@click.option("--series-col", default="series_id", show_default=True, metavar="COL",
              help="Column holding the series id (str or int), e.g. --series-col meter_id; "
                   "a hive partition key works too (--series-col region).")
@click.option("--time-col", default="timestamp", show_default=True, metavar="COL",
              help="Column holding the timestamp (datetime, ISO 8601 text or number), e.g. "
                   "--time-col ts.")
@click.option("--target-col", default="value", show_default=True, metavar="COL",
              help="Column holding the value to forecast, e.g. --target-col load_kw.")
@click.option("--features", default="", metavar="A,B",
              help="Comma-separated numeric feature columns known at forecast time, e.g. "
                   "--features outside_temp,holiday.")
@click.option("--replay", metavar="FILE",
              help="History to learn from first (warms weights and states; not scored, "
                   "not written unless --write-replay), e.g. --replay history.parquet; a "
                   "directory or glob too.")
@click.option("--write-replay", is_flag=True,
              help="Also write the forecasts made while replaying history to --out "
                   "(with --replay FILE --out FILE).")
@click.option("--out", metavar="FILE",
              help="Write every forecast (series_id, timestamp, y, yhat[, yhat_h2..]) to a "
                   ".parquet, .csv, .csv.gz or .jsonl (JSON Lines) file (--out forecasts.parquet); "
                   "'-' writes CSV "
                   "to stdout.  Without it the latest forecast of each series is printed.")
@click.option("--metrics-out", metavar="FILE",
              help="Write one row of metrics per series (rows scored, MAE, RMSE, SMAPE, naive "
                   "MAE; with intervals their coverage and width; with --horizon the same "
                   "per step) to a .parquet, .csv, .csv.gz or .jsonl file, e.g. "
                   "--metrics-out series.csv.")
@click.option("--checkpoint", metavar="DIR",
              help="Checkpoint directory (created if missing), e.g. --checkpoint ckpt/: "
                   "rerunning the same command resumes where it stopped (after a crash or "
                   "kill), with no row missing or written twice.")
@click.option("--checkpoint-every", default="60s", show_default=True, metavar="N|30s",
              help="Checkpoint every N rows, or every so many seconds/minutes/hours, e.g. "
                   "--checkpoint-every 100000, 30s, 5m, 1h.")
@click.option("--init-from", metavar="CKPT",
              help="Start from the model of another run's checkpoint (its series count as "
                   "history) instead of a fresh one, e.g. --init-from yesterday-ckpt/.")
@click.option("--horizon", default=1, show_default=True, type=click.IntRange(1, 10_000), metavar="N",
              help="Steps ahead forecast at every row (adds yhat_h2.. columns), e.g. "
                   "--horizon 24 for a day of hourly steps.")
@click.option("--coverage", default=0.9, show_default=True, metavar="C",
              type=click.FloatRange(0.0, 1.0, max_open=True),
              help="Prediction intervals of nominal coverage C for every forecast (adds "
                   "yhat_lo, yhat_hi[, yhat_lo_h2, yhat_hi_h2..] columns; the summary "
                   "reports their empirical coverage), e.g. --coverage 0.8; 0: none.")
@click.option("--cell", type=click.Choice(["lstm", "gru"]), default=_FD["cell"],
              show_default=True, help="Recurrent cell: LSTM, or GRU (fewer weights, "
                                      "faster), e.g. --cell gru.")
@click.option("--hidden-size", default=_FD["hidden_size"], show_default=True,
              type=click.IntRange(1, 4096), metavar="N",
              help="Hidden units per layer, e.g. --hidden-size 32 (1..4096).")
@click.option("--layers", "n_layers", default=_FD["n_layers"], show_default=True,
              type=click.IntRange(1, 16), metavar="N",
              help="Stacked recurrent layers, e.g. --layers 2 (1..16).")
@click.option("--k1", default=_FD["k1"], show_default=True, type=click.IntRange(1, None),
              metavar="N", help="Truncated BPTT: learn every k1 rows of a series ...")
@click.option("--k2", default=_FD["k2"], show_default=True, type=click.IntRange(1, None),
              metavar="N", help="... back-propagating through its last k2 rows (k1 <= k2), "
                                "e.g. --k1 4 --k2 24.")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam",
              show_default=True, help="Optimizer of the online updates, e.g. --optimizer sgd.")
@click.option("--lr", default=_DEFAULT_LR, show_default=True,
              type=click.FloatRange(0, None, min_open=True), metavar="LR",
              help="Learning rate of the optimizer, e.g. --lr 0.001.")
@click.option("--lags", default=",".join(map(str, _FD["lags"])), show_default=True,
              metavar="1,2,24", help="Past values (in rows of the series) fed to the network, "
                                     "e.g. --lags 1,2,24 (the last two and a day ago, hourly).")
@click.option("--seasonality", default="", metavar="24,168",
              help="Seasonal periods in rows of a series (e.g. 24,168 for hourly data with "
                   "daily and weekly cycles): adds the position in each period as inputs.")
@click.option("--scaling", type=click.Choice(["series", "global"]), default=_FD["scaling"],
              show_default=True, help="Scale each series on its own, or every series with "
                                      "one model-wide scaler (then state learned on one "
                                      "series transfers to a new one), e.g. --scaling global.")
@click.option("--experts", type=click.Choice(["auto", "none"]), default=_FD["experts"],
              show_default=True, help="Combine every forecast online with the naive, smoothed-"
                                      "level, seasonal (naive, random walk, Holt-Winters), "
                                      "detected-cycle and drift forecasts, by "
                                      "weights learned from each series' errors so far (auto; "
                                      "the summary shows them), or the network alone, e.g. "
                                      "--experts none.")
@click.option("--seed", default=_FD["seed"], show_default=True, type=click.IntRange(0, None),
              metavar="N", help="Seed of the initial weights (same seed, same results), e.g. "
                                "--seed 7.")
@click.option("--backend", type=click.Choice(["cpu", "cuda", "reference"]), default="cpu",
              show_default=True, help="Numba CPU kernels, Numba CUDA kernels (an NVIDIA GPU), "
                                      "or plain NumPy, e.g. --backend cuda.")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default=_FD["dtype"],
              show_default=True, help="Floating-point precision of the network, e.g. "
                                      "--dtype float32 (faster, esp. on GPUs).")
@click.option("--on-bad-row", type=click.Choice(BAD_ROW_CHOICES), default="error",
              show_default=True, help="Bad row (see the data policy below): stop with an error "
                                      "naming it, or skip it and count it, e.g. "
                                      "--on-bad-row skip.")
@click.option("--new-series", type=click.Choice(NEW_SERIES_CHOICES), default="allow",
              show_default=True, help="A series in the live data that the history never had: "
                                      "start it from zero state, skip its rows, or stop, e.g. "
                                      "--new-series skip.")
@click.option("--metrics-window", default=1000, show_default=True, type=click.IntRange(1, None),
              metavar="N", help="Rows in the rolling metric window of the summary, e.g. "
                                "--metrics-window 10000.")
@click.option("--plot", default="forecast.png", show_default=True, metavar="PNG|HTML",
              help="Draw actual vs forecast (with the naive forecast, the band, each series' "
                   "MAE) of the chosen (or worst) series into this file: an image (.png, "
                   ".svg, .pdf) or an interactive page (--plot report.html).")
@click.option("--no-plot", is_flag=True, help="Do not draw a plot (no forecast.png).")
@click.option("--plot-series", default="", metavar="ID,ID",
              help="Series to plot, e.g. --plot-series power-01,power-07 (default: the three "
                   "worst by MAE).")
@click.option("--plot-points", default=500, show_default=True, type=click.IntRange(2, None),
              metavar="N", help="Latest points of each series drawn, e.g. --plot-points 2000.")
@click.option("--show", default=10, show_default=True, type=click.IntRange(0, None),
              metavar="N", help="Series listed in the printed table of latest forecasts "
                                "(without --out), e.g. --show 50; 0: none.")
@click.option("--batch-rows", default=16384, show_default=True, type=click.IntRange(1, None),
              metavar="N", help="Rows read per batch (memory vs overhead; does not change "
                                "results), e.g. --batch-rows 65536.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar on stderr, e.g. --no-progress in a cron job "
                   "[default: when stderr is a terminal].")
@kafka_options
def run(**o):
    """Forecast every row of a stream, then learn from it.

    For each row, in arrival order: the one-step forecast made before its value
    is seen, then an online learning step (truncated BPTT).  Prints the latest
    forecasts (or writes all of them with --out), a River metric summary (MAE,
    RMSE, SMAPE: overall, over the last --metrics-window rows, worst series) and
    a plot.

    \b
    Examples:
      streamlstm run --source examples/sensor.parquet
      streamlstm run --source live.parquet --replay history.parquet \\
                     --out forecasts.parquet --checkpoint ckpt/ --checkpoint-every 100000
      streamlstm run --source lake/ --out forecasts.csv.gz --metrics-out series.csv \\
                     --plot report.html
      streamlstm run --source 'eu/*.csv.gz' --csv-sep ';' --decimal , \\
                     --time-format '%d.%m.%Y %H:%M' --out forecasts.parquet
    """
    from streamlstm.io.filejob import FileJob, JobConfig
    from streamlstm.io.files import Columns

    every_rows, every_seconds = _parse_every(o["checkpoint_every"])
    if o["k1"] > o["k2"]:
        raise click.BadParameter(f"--k1 {o['k1']} > --k2 {o['k2']}: truncated BPTT needs "
                                 f"k1 <= k2; raise --k2 or lower --k1", param_hint="--k1")
    features = _split_list(o["features"])
    plot = None if o["no_plot"] or not o["plot"] else o["plot"]
    if o["out"] and o["out"] != "-":
        from streamlstm.io.sinks import out_format
        if out_format(o["out"]) is None:
            raise click.BadParameter(f"{o['out']!r}: name the output .parquet, .csv, .csv.gz "
                                     f"or .jsonl (or '-' for CSV on stdout)", param_hint="--out")
    if o["metrics_out"]:
        from streamlstm.io.sinks import out_format
        if o["source"].startswith("kafka://"):
            raise click.BadParameter("a Kafka run never ends by itself; --metrics-out applies "
                                     "to file sources", param_hint="--metrics-out")
        if o["metrics_out"] == "-" or out_format(o["metrics_out"]) is None:
            raise click.BadParameter(f"{o['metrics_out']!r}: name the file .parquet, .csv, "
                                     f".csv.gz or .jsonl", param_hint="--metrics-out")
    if o["checkpoint"] and os.path.exists(o["checkpoint"]) and not os.path.isdir(o["checkpoint"]):
        raise click.BadParameter(f"{o['checkpoint']!r} is a file; --checkpoint names a directory "
                                 f"(created if missing)", param_hint="--checkpoint")
    if plot and not plot.lower().endswith(IMAGE_SUFFIXES + HTML_SUFFIXES):
        raise click.BadParameter(f"{plot!r}: name the plot .png (or .svg, .pdf), or .html for "
                                 f"an interactive page", param_hint="--plot")
    cfg = JobConfig(
        source=o["source"],
        columns=Columns(o["series_col"], o["time_col"], o["target_col"], features),
        fmt=None if o["fmt"] == "auto" else o["fmt"], replay=o["replay"],
        write_replay=o["write_replay"], out=o["out"], checkpoint=o["checkpoint"],
        every_rows=every_rows, every_seconds=every_seconds, init_from=o["init_from"],
        horizon=o["horizon"], coverage=o["coverage"] or None, backend=o["backend"],
        model=_model_options(o),
        policy=Policy(o["on_bad_row"], o["new_series"]), metrics_window=o["metrics_window"],
        batch_rows=o["batch_rows"], keep_forecasts=plot is not None,
        dialect=_dialect(o))
    show_progress = sys.stderr.isatty() if o["progress"] is None else o["progress"]
    progress = Progress(show_progress)
    if kafka_dispatch(cfg, o, progress):
        return
    job = FileJob(cfg, progress)
    try:
        res = _run_job(job, progress, cfg)
        _report(res, cfg, o, plot, job)
    except BrokenPipeError:
        _quiet_broken_pipe()
    finally:
        job.cleanup()


def _dialect(o):
    from streamlstm.io.files import Dialect
    sep = o["csv_sep"]
    if sep is not None:
        sep = {"\\t": "\t", "tab": "\t"}.get(sep, sep)
        if len(sep) != 1:
            raise click.BadParameter(f"{o['csv_sep']!r}: the separator is one character, e.g. "
                                     f"';' or '\\t'", param_hint="--csv-sep")
    if sep == o["decimal"]:
        raise click.BadParameter(f"{sep!r} cannot be both the separator and the decimal mark",
                                 param_hint="--csv-sep")
    return Dialect(sep=sep, decimal=o["decimal"], time_format=o["time_format"])


def _quiet_broken_pipe():
    """stdout's reader went away (``--out - | head``): stop quietly, as Unix tools
    do, with the status of a SIGPIPE death; no "Error: Broken pipe"."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())   # Python's final flush must not fail again
    raise click.exceptions.Exit(128 + signal.SIGPIPE)


def _model_options(o):
    """The model options for ``JobConfig.model``.  With ``--init-from`` the model is
    the checkpoint's: only the options given on the command line are kept (to be
    checked against it), the defaults become None."""
    model = {"cell": o["cell"], "hidden_size": o["hidden_size"], "n_layers": o["n_layers"],
             "k1": o["k1"], "k2": o["k2"], "optimizer": o["optimizer"], "lr": o["lr"],
             "dtype": o["dtype"], "seed": o["seed"], "lags": _numbers(o["lags"], "--lags"),
             "seasonality": _numbers(o["seasonality"], "--seasonality", float) or None,
             "scaling": o["scaling"], "experts": o["experts"]}
    if o["init_from"]:
        ctx = click.get_current_context()
        for key in model:
            if ctx.get_parameter_source(key) is ParameterSource.DEFAULT:
                model[key] = None
    return model


def _run_job(job, progress, cfg):
    """``job.run()`` with every user error turned into one ``Error:`` line."""
    from streamlstm.io.filejob import Interrupted
    try:
        try:
            return job.run()
        finally:
            progress.break_line()
    except Interrupted as exc:
        where = (f"checkpoint written at {exc.phase} row {exc.row:,}; rerun the same command to "
                 f"resume" if exc.checkpointed else "no --checkpoint, nothing saved")
        what = "terminated (SIGTERM)" if exc.signum == signal.SIGTERM else "interrupted"
        click.echo(f"{what}: {where}", err=True)
        raise click.exceptions.Exit(128 + int(exc.signum))
    except (DataError, InputError, CheckpointError, BackendUnavailableError) as exc:
        fail(exc)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("streamlstm."):
            other = "cpu" if cfg.backend != "cpu" else "reference"
            fail(f"backend {cfg.backend!r} is not available in this build ({exc}); pass "
                  f"--backend {other}")
        raise
    except BrokenPipeError:
        raise
    except OSError as exc:
        fail(f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or exc}".lstrip(": "))


def _report(res, cfg, o, plot, job):
    """The end of a run: latest forecasts (stdout), summary, plot."""
    from streamlstm.io.filejob import write_series_metrics

    runner = res.runner
    err = lambda s="": click.echo(s, err=True)  # noqa: E731
    if not cfg.out and o["show"]:
        _print_latest(runner, cfg, o["show"])
    if res.already_complete:
        err(f"checkpoint {cfg.checkpoint}: this run was already complete; nothing new to read")
    elif res.resumed_at:
        err(f"resumed from checkpoint {cfg.checkpoint} at {res.resumed_at[0]} row "
            f"{res.resumed_at[1]:,}")
    for phase, n in res.rows.items():
        if n:
            name = cfg.replay if phase == "replay" else cfg.source
            err(f"{'replayed' if phase == 'replay' else 'read'} {n:,} rows of {name}")
    m = runner.metrics
    # the rate leaves out a first run's compile (it says how long that took)
    compiling = res.compile_seconds if res.compile_seconds >= COMPILE_SHOWN_S else 0.0
    rate = sum(res.rows.values()) / max(res.seconds - compiling, 1e-9)
    err(f"{runner.rows_forecast:,} rows forecast, {runner.n_series:,} series, "
        f"{res.seconds:.1f} s ("
        + (f"{compiling:.1f} s of it compiling, first run only; " if compiling else "")
        + f"{rate:,.0f} rows/s); "
        f"{m.missing:,} live rows with a missing target (forecast, not scored)"
        + (f", {m.unforecast:,} before their series' first value (no forecast yet)"
           if m.unforecast else ""))
    if runner.skipped:
        n_skip = sum(runner.skipped.values())
        share = n_skip / max(runner.rows_in, 1)
        detail = ", ".join(f"{n:,} {reason}" for reason, n in sorted(runner.skipped.items()))
        err(f"skipped {n_skip:,} rows ({share:.1%} of {runner.rows_in:,}; --on-bad-row/"
            f"--new-series skip): {detail}")
        if share > SKIP_WARN_SHARE:
            err(f"Warning: {share:.0%} of the rows were skipped ({n_skip:,} of "
                f"{runner.rows_in:,}): most of this input did not reach the model. Is the file "
                f"sorted by time within each series, and are --series-col/--time-col right?")
    for line in format_summary(m.summary(n_worst=3), series_label(runner)):
        err(line)
    line = format_weights(runner.model)
    if line:
        err(line)
    if runner.intervals is not None:
        for line in format_intervals(runner.intervals.report(INTERVAL_SKIP),
                                     runner.model.coverage, INTERVAL_SKIP):
            err(line)
    if cfg.out and cfg.out != "-":
        rows = f" ({res.out_rows:,} rows)" if res.out_rows is not None else ""
        err(f"forecasts: {cfg.out}{rows}")
    if o["metrics_out"]:
        n = write_series_metrics(o["metrics_out"], runner)
        err(f"metrics per series: {o['metrics_out']} ({n:,} series)")
    if plot:
        _draw_plot(plot, res, cfg, o, err)
    if cfg.checkpoint:
        err(f"checkpoint: {cfg.checkpoint}")


def _draw_plot(plot, res, cfg, o, err):
    """The plot of the chosen (or worst) series, with each one's MAE and naive MAE."""
    from streamlstm.io.filejob import read_curves, source_label
    runner = res.runner
    ids = runner.ids
    by_str = {str(s): s for s in ids}
    series = []
    for s in _split_list(o["plot_series"]):
        if s in by_str:
            series.append(by_str[s])
        else:
            err(f"warning: --plot-series {s!r} was not in the data; not plotted")
    if not series:
        series = [ids[i] for i, _, _ in runner.metrics.worst(3)] or ids[:3]
    curves = read_curves(res.forecast_files, series, o["plot_points"])
    if not curves:
        err("plot: no forecasts to draw")
        return
    drawn = [s for s in series if s in curves]
    table = runner.metrics.per_series_table()
    index = {s: i for i, s in enumerate(ids)}
    stats = [(float(table["MAE"][index[s]]), float(table["naive_MAE"][index[s]]))
             if index[s] < len(table["MAE"]) else None for s in drawn]
    plot_forecasts(plot, [(f"{cfg.columns.series} = {s}", *curves[s]) for s in drawn],
                   title=f"{source_label(cfg.source)}: actual vs one-step forecast"
                         + (f" ({cfg.coverage:.0%} interval)" if cfg.coverage else ""),
                   stats=stats, xlabel=cfg.columns.time, ylabel=cfg.columns.target)
    err(f"plot: {plot} ({', '.join(str(s) for s in drawn)})")


def _print_latest(runner, cfg, show):
    """Table of each series' latest row and forecast, and the next forecasts."""
    ids = runner.ids
    if not ids:
        click.echo("no rows were forecast")
        return
    order = sorted(range(len(ids)), key=lambda i: (str(type(ids[i])), ids[i]))[:show]
    nxt = {}
    if not cfg.columns.features:
        try:
            nxt = runner.model.forecast(cfg.horizon, series=[ids[i] for i in order])
        except (InputError, TypeError, ValueError, KeyError):
            nxt = {}
    for line in latest_table(runner, order, cfg.horizon, nxt):
        click.echo(line)
    if len(ids) > show:
        click.echo(f"... and {len(ids) - show:,} more series (--show N lists more; --out FILE "
                   f"writes every forecast)")
