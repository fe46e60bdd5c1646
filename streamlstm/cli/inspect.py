"""``streamlstm inspect``: describe a checkpoint without running anything."""
from __future__ import annotations

import time

import click

from streamlstm.cli.messages import (INTERVAL_SKIP, fail, format_intervals, format_summary,
                                     series_label)
from streamlstm.errors import CheckpointError, InputError
from streamlstm.io.filejob import checkpoint_path, describe_fingerprint
from streamlstm.stream.runner import StreamRunner


@click.command()
@click.argument("checkpoint", metavar="CKPT")
def inspect(checkpoint):
    """Describe a checkpoint (a --checkpoint DIR or its checkpoint file): model,
    series, position, source and metrics so far."""
    path = checkpoint_path(checkpoint)
    try:
        runner, pos, meta = StreamRunner.restore(path)
    except (CheckpointError, InputError) as exc:
        fail(exc)
    except ModuleNotFoundError as exc:
        fail(f"{path}: its backend is not available in this build ({exc})")
    cfg = meta.get("config", {})
    model = runner.model
    click.echo(f"checkpoint   {path}")
    if cfg:
        click.echo(f"model        {cfg.get('cell')} hidden={cfg.get('hidden_size')} "
                   f"layers={cfg.get('n_layers')} k1={cfg.get('k1')} k2={cfg.get('k2')} "
                   f"{cfg.get('optimizer')}(lr={cfg.get('lr')}) {cfg.get('dtype')} "
                   f"horizon={cfg.get('horizon')} backend={getattr(model, 'backend', '?')} "
                   f"scaling={getattr(model, 'scaling', 'series')}")
        click.echo(f"columns      series={cfg.get('series_col')} time={cfg.get('time_col')} "
                   f"target={cfg.get('target_col')} features={','.join(cfg.get('features') or []) or '-'}")
    click.echo(f"series       {runner.n_series:,}")
    click.echo(f"rows         {runner.rows_forecast:,} forecast, "
               f"{sum(runner.skipped.values()):,} skipped")
    if pos is not None:
        state = "complete" if meta.get("done") else "in progress"
        click.echo(f"position     {pos.get('phase')} row {pos.get('row'):,} ({state}; "
                   f"{meta.get('parts', 0)} output parts)")
    for phase, s in (meta.get("sources") or {}).items():
        click.echo(f"{phase:<12} {s['path']} ({describe_fingerprint(s['fingerprint'])})")
    if meta.get("saved_at"):
        click.echo(f"saved        {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(meta['saved_at']))}")
    for line in format_summary(runner.metrics.summary(n_worst=3), series_label(runner)):
        click.echo(line)
    if runner.intervals is not None:
        for line in format_intervals(runner.intervals.report(INTERVAL_SKIP),
                                     runner.model.coverage, INTERVAL_SKIP):
            click.echo(line)
