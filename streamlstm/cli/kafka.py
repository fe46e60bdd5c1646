"""``streamlstm run``'s Kafka mode, command-line side: the Kafka-only options
(``kafka_options``, a decorator on ``run``), ``dispatch`` (runs a
``streamlstm.io.kafka.job.KafkaJob`` when ``--source`` is ``kafka://...``) and
the end-of-run summary (``summary_lines``)."""
from __future__ import annotations

import math

import signal

import click

from streamlstm.errors import BackendUnavailableError, CheckpointError, InputError
from streamlstm.io.kafka.address import KafkaAddress, KafkaRuntimeError, is_kafka_url
from streamlstm.io.kafka.job import KafkaJob, KafkaOptions
from streamlstm.io.kafka.store import PartitionStore
from streamlstm.cli.messages import INTERVAL_SKIP, format_intervals, format_steps, pool_steps
from streamlstm.stream.metrics import METRIC_NAMES
from streamlstm.stream.policy import DataError

# Option name in ``run``'s keyword arguments -> the flag, for messages.
KAFKA_FLAGS = {"group": "--group", "sink": "--sink", "instance_id": "--instance-id",
               "max_idle": "--max-idle", "max_messages": "--max-messages",
               "exactly_once": "--exactly-once", "session_timeout": "--session-timeout"}


def kafka_options(f):
    """Decorator adding the Kafka options to ``streamlstm run``."""
    opts = [
        click.option("--group", metavar="NAME",
                     help="Kafka source: consumer group.  Every worker of one job uses the same "
                          "name (and the same --checkpoint): Kafka splits the topic's "
                          "partitions among them; e.g. --group forecasters."),
        click.option("--sink", metavar="kafka://HOST:PORT/TOPIC",
                     help="Kafka source: send every forecast to this topic (key = series id, "
                          "JSON value with series_id, timestamp, y, yhat[, yhat_lo, yhat_hi], "
                          "partition, offset); e.g. --sink kafka://broker:9092/forecasts."),
        click.option("--instance-id", metavar="ID",
                     help="Kafka source: static group membership (group.instance.id); a worker "
                          "restarted with the same id gets its partitions back without moving "
                          "the others'; e.g. --instance-id worker-1."),
        click.option("--max-idle", type=click.FloatRange(0, None, min_open=True),
                     metavar="SECONDS",
                     help="Kafka source: stop after SECONDS without a message [default: run "
                          "until Ctrl-C or SIGTERM]; e.g. --max-idle 30."),
        click.option("--max-messages", type=click.IntRange(1, None), metavar="N",
                     help="Kafka source: stop after N messages; e.g. --max-messages 100000."),
        click.option("--exactly-once", is_flag=True,
                     help="Kafka source: send forecasts in Kafka transactions with the source "
                          "offsets, so a crash never duplicates one (read the sink with "
                          "isolation.level=read_committed)."),
        click.option("--session-timeout", type=click.FloatRange(1, 3600), metavar="SECONDS",
                     help="Kafka source: a worker silent this long is declared dead and its "
                          "partitions move to the others [default: 10]; e.g. "
                          "--session-timeout 30."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _given(o):
    return [flag for key, flag in KAFKA_FLAGS.items() if o.get(key) not in (None, False)]


def dispatch(cfg, o, progress=None) -> bool:
    """Run ``streamlstm run``'s Kafka mode when ``--source`` is ``kafka://...``
    (returns True when it did); with a file source, refuse Kafka-only options."""
    if not is_kafka_url(cfg.source):
        given = _given(o)
        if given:
            raise click.BadParameter(f"{', '.join(given)} only apply to a Kafka source "
                                     f"(--source kafka://HOST:PORT/TOPIC)", param_hint=given[0])
        return False
    kopts = KafkaOptions(group=o.get("group"), sink=o.get("sink"), instance_id=o.get("instance_id"),
                         max_idle=o.get("max_idle"), max_messages=o.get("max_messages"),
                         exactly_once=bool(o.get("exactly_once")),
                         session_timeout_ms=int(1000 * (o.get("session_timeout") or 10.0)))
    job = KafkaJob(cfg, kopts, progress=progress,
                   log=lambda s: click.echo(f"streamlstm: {s}", err=True))
    try:
        res = job.run()
    except (DataError, InputError, CheckpointError, BackendUnavailableError,
            KafkaRuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("streamlstm."):
            raise click.ClickException(f"backend {cfg.backend!r} is not available in this build "
                                       f"({exc}); pass --backend reference") from None
        raise
    for line in summary_lines(res, cfg):
        click.echo(line, err=True)
    stop = res.summary.stopped_because
    if stop.startswith("stopped by"):   # snapshotted and left the group; exit as signalled
        raise click.exceptions.Exit(128 + (signal.SIGTERM if "SIGTERM" in stop else signal.SIGINT))
    return True


def summary_lines(res, cfg):
    """The end of a Kafka run: what was read and sent, bad messages, and River
    metrics per partition plus all partitions together."""
    s = res.summary
    out = [f"read {s.messages:,} messages of {s.source} (group {s.group}) in {s.seconds:.1f} s, "
           f"{s.busy_seconds:.1f} s of it busy ({s.messages / max(s.busy_seconds, 1e-9):,.0f} "
           f"messages/s); {s.stopped_because}"]
    if s.forecasts:
        out.append(f"sent {s.forecasts:,} forecasts to {res.sink}")
    if s.skipped:
        detail = ", ".join(f"{n:,} {reason}" for reason, n in sorted(s.skipped.items()))
        out.append(f"skipped {sum(s.skipped.values()):,} bad messages (--on-bad-row skip): "
                   f"{detail}")
    if not res.runners:
        out.append("this worker held no partition at the end")
        return out
    out += _metric_lines(res)
    if cfg.checkpoint:
        topic = KafkaAddress.parse(cfg.source).topic
        out.append(f"snapshots: {PartitionStore(cfg.checkpoint).pattern(topic)}")
    return out


_W = 24     # width of the partition column


def _metric_row(label, vals):
    return (f"{label:{_W}}" + f"{vals['MAE']:>12.4g}{vals['RMSE']:>12.4g}"
            f"{vals['SMAPE']:>11.3g}%")


def _metric_lines(res):
    """Metrics per partition held, all partitions pooled, the worst series."""
    s = res.summary
    out = [f"{'partition':{_W}}" + "".join(f"{n:>12}" for n in METRIC_NAMES)]
    tot = {n: 0.0 for n in METRIC_NAMES}
    scored = 0
    worst = []
    for p, r in res.runners.items():
        m = r.metrics.summary(n_worst=3)
        label = f"{p} ({s.partitions[p]['offset']:,} msgs, {r.n_series:,} series)"
        if m["scored"] == 0:
            out.append(f"{label:{_W}}  no scored rows")
            continue
        out.append(_metric_row(label, m["overall"]))
        n = m["scored"]
        scored += n
        tot["MAE"] += n * m["overall"]["MAE"]
        tot["RMSE"] += n * m["overall"]["RMSE"] ** 2
        tot["SMAPE"] += n * m["overall"]["SMAPE"]
        worst += [(mae, r.ids[i], k) for i, mae, k in m["worst"]]
    if scored and len(res.runners) > 1:
        # Exact pooling of the partitions' overall metrics (means of per-row terms).
        out.append(_metric_row(f"all {scored:,} rows", {"MAE": tot["MAE"] / scored,
                                                        "RMSE": math.sqrt(tot["RMSE"] / scored),
                                                        "SMAPE": tot["SMAPE"] / scored}))
    if worst:
        worst.sort(key=lambda t: -t[0] if math.isfinite(t[0]) else math.inf)
        out.append("worst series by MAE: " + ", ".join(f"{sid} {mae:.4g} ({k:,} rows)"
                                                       for mae, sid, k in worst[:3]))
    steps = [r.metrics.steps.report() for r in res.runners.values()
             if r.metrics.steps is not None]
    if steps:
        out += format_steps(pool_steps(steps))
    out += _interval_lines(res)
    return out


def _interval_lines(res):
    """Prediction intervals pooled over the partitions held: each partition's
    scored bands after its first 20%, weighted by their counts."""
    reps = [r.intervals.report(INTERVAL_SKIP) for r in res.runners.values()
            if r.intervals is not None]
    cov = [r.model.coverage for r in res.runners.values() if r.intervals is not None]
    if not reps:
        return []
    pooled = []
    for steps in zip(*reps):
        n = sum(s["scored"] for s in steps)
        avg = {k: sum(s[k] * s["scored"] for s in steps if s["scored"]) / n if n else math.nan
               for k in ("coverage", "width", "winkler")}
        pooled.append({"step": steps[0]["step"], "scored": n, **avg})
    return format_intervals(pooled, cov[0], INTERVAL_SKIP)
