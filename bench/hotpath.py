"""The per-observation hot path: what one public call per arriving value costs
(issue 13), timed through the calls a user makes, in one process.

    python bench/hotpath.py            # about a minute once the kernels are compiled
    python bench/hotpath.py --quick    # fewer observations and repeats (a smoke test)
    python bench/hotpath.py --all      # every row of issue 13's table (rows d, e: fresh processes)

Rows:

(a) ``OnlineRNN.step(u, y)``, one series, LSTM H=32, TBPTT(16, 16), Adam,
    float64: us per observation, against the hand-written PyTorch
    ``LSTMCell`` TBPTT loop of ``bench/core.py`` (imported from there, one
    thread), timed round-robin in this run.
(b) ``LSTMForecaster()`` (defaults, so ``coverage=0.9``): ``learn_one(y)`` then
    ``forecast(1)`` per observation; and the same with ``coverage=None``.
    The issue's anchor is deep-river's per-observation work in torch, 842 us,
    measured in its own virtualenv (``bench/river_speed.py``) on a quiet
    machine, not here.  So that a loaded machine does not count against us
    (or for us), the anchor is scaled by this run's PyTorch loop of (a) over
    that quiet run's (134 us): both are per-observation PyTorch work on one
    thread.  The table shows the ratio to that estimate and to the raw 842 us.
    And ``LSTMForecaster(coverage=None, experts=None)``: the difference is what
    the aggregation of experts costs (issue 11: at most 2 us); the defaults minus
    ``coverage=None`` is what the intervals add (issue 12: at most 1 us per
    observation per horizon step, here one step).
(c) ``MultiSeriesForecaster()`` (defaults): ``predict_learn([id], [y])`` one
    row at a time, one series (the call the CLI and the Kafka worker make per
    arrival when rows come one by one).  The issue sets no separate goal; the
    table holds it to (b)'s.

Every figure is the median over repeats of the mean over a block of
observations; the first calls (Numba compilation or cache loading) are
excluded.  Ratios compare things timed in the same run.

With ``--all`` the script also takes the issue's other rows, each through the
call a user makes, in the same run:

(d) ``OnlineRNN.step`` once per time step of 10,000 series (float32, one
    thread) against the batched PyTorch loop: ``bench/core.py``'s part-2
    children (each contender in its own process, round-robin over repeats);
(e) the first ``LSTMForecaster().learn_one`` (two values, then ``forecast(1)``)
    and the first ``streamlstm run --source examples/sensor.parquet`` (with
    ``--out`` and ``--plot``: a little more than the issue's bare command) in a
    fresh process with an empty Numba cache, then the same command again on the
    cache it left (warm): ``bench/compile_time.py``'s children, ``import``
    included, the interpreter's start not.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import compile_time  # noqa: E402  (bench/compile_time.py: first runs in fresh processes)
import core  # noqa: E402  (bench/core.py: the PyTorch TBPTT loop and the model config)

import streamlstm  # noqa: E402
from streamlstm.forecast.multiseries import MultiSeriesForecaster  # noqa: E402

DEEPRIVER_US = 842.0          # issue 13's anchor for (b), measured outside this run
ISSUE_TORCH_US = 134.0        # the PyTorch loop of (a) in the same quiet run as DEEPRIVER_US
GOAL_STEP_X = 70.0            # (a): >= 70x the PyTorch loop
GOAL_FORECASTER_X = 100.0     # (b): >= 100x deep-river
GOAL_EXPERTS_US = 2.0         # issue 11: the aggregation adds at most 2 us per observation
GOAL_INTERVALS_US = 1.0       # issue 12: at most 1 us per observation per horizon step
GOAL_MANY_X = 3.0             # (d): >= 3x batched PyTorch
GOAL_FIRST_S = {"river": 10.0, "cli": 15.0}   # (e): first runs, seconds
GOAL_CLI_WARM_S = 2.0         # (e): the same CLI command warm


def values(n, seed=0):
    """A noisy sine around 100 (raw scale: the forecasters scale it online)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    return 100.0 + 10.0 * np.sin(0.1 * t) + rng.normal(size=n)


def bench(quick):
    import torch
    torch.set_num_threads(1)
    reps = 3 if quick else 9
    n_step, n_torch, n_fc = (256, 64, 256) if quick else (2048, 256, 1024)
    total = reps * max(n_step, n_fc) + 512

    # (a) OnlineRNN.step, one call per observation
    U, Y = core.series_data(reps * n_step + 64, 1, np.float64)
    net = core.net(1, "float64")
    for t in range(64):                                   # compile / load, warm up
        net.step(U[t], Y[t])
    pos = {"a": 64}

    def run_step():
        a = pos["a"]
        for t in range(a, a + n_step):
            net.step(U[t], Y[t])
        pos["a"] = a + n_step

    Ut, Yt = core.series_data(reps * n_torch + 32, 1, np.float64)
    Ut, Yt = torch.from_numpy(Ut), torch.from_numpy(Yt)
    tm = core.TorchTBPTT(1, torch.float64)
    tm.steps(Ut[:32], Yt[:32])
    pos["t"] = 32

    def run_torch():
        a = pos["t"]
        tm.steps(Ut[a:a + n_torch], Yt[a:a + n_torch])
        pos["t"] = a + n_torch

    # (b) LSTMForecaster: learn_one + forecast(1)
    ys = values(total).tolist()

    def forecaster_runner(key, model):
        for v in ys[:200]:                                # compile / load, warm up
            model.learn_one(v)
            model.forecast(1)
        pos[key] = 200

        def run():
            a = pos[key]
            for v in ys[a:a + n_fc]:
                model.learn_one(v)
                model.forecast(1)
            pos[key] = a + n_fc
        return run

    run_fc = forecaster_runner("fc", streamlstm.LSTMForecaster())
    run_fc_nocov = forecaster_runner("fcn", streamlstm.LSTMForecaster(coverage=None))
    run_fc_alone = forecaster_runner("fca", streamlstm.LSTMForecaster(coverage=None,
                                                                     experts=None))

    # (c) MultiSeriesForecaster.predict_learn, one row per call
    ms = MultiSeriesForecaster()
    for v in ys[:200]:
        ms.predict_learn(["a"], [v])
    pos["ms"] = 200

    def run_ms():
        a = pos["ms"]
        for v in ys[a:a + n_fc]:
            ms.predict_learn(["a"], [v])
        pos["ms"] = a + n_fc

    t_step, t_torch, t_fc, t_fcn, t_fca, t_ms = core.interleaved_medians(
        [run_step, run_torch, run_fc, run_fc_nocov, run_fc_alone, run_ms], reps)
    return {"step_us": t_step / n_step * 1e6, "torch_us": t_torch / n_torch * 1e6,
            "forecaster_us": t_fc / n_fc * 1e6, "forecaster_nocov_us": t_fcn / n_fc * 1e6,
            "forecaster_alone_us": t_fca / n_fc * 1e6,
            "predict_learn_us": t_ms / n_fc * 1e6, "reps": reps,
            "obs": {"step": n_step, "torch": n_torch, "forecaster": n_fc}}


def bench_more(quick):
    """Rows (d) and (e) (see the module doc)."""
    import tempfile
    from pathlib import Path
    N, T = (2000 if quick else 10000), 32
    reps = 2 if quick else 3
    ts = {"cpu_step": [], "torch": []}
    for _ in range(reps):                       # round-robin, each in a fresh process
        for what in ts:
            ts[what].append(core.part2_child(what, 1, N, T)["t"])
    more = {"N": N, "T": T,
            "step_obs_per_s": N * T / float(np.median(ts["cpu_step"])),
            "torch_obs_per_s": N * T / float(np.median(ts["torch"]))}
    for scenario in ("river", "cli"):
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "numba_cache"
            cold = compile_time.run_child(scenario, cache, tmp)
            more[scenario + "_cold_s"] = cold["import_s"] + cold["calls_s"]
            if scenario == "cli":
                warm = compile_time.run_child(scenario, cache, tmp)
                more["cli_warm_s"] = warm["import_s"] + warm["calls_s"]
    return more


def more_rows(m):
    """Table rows of ``bench_more``'s figures: (name, target, measured, met)."""
    x = m["step_obs_per_s"] / m["torch_obs_per_s"]
    return [
        (f"OnlineRNN.step per time step, {m['N']:,} series, float32, 1 thread",
         f">= {GOAL_MANY_X:.0f}x batched PyTorch",
         f"{m['step_obs_per_s'] / 1e6:.2f} M series-obs/s; PyTorch "
         f"{m['torch_obs_per_s'] / 1e6:.2f} M/s -> {x:.2f}x", x >= GOAL_MANY_X),
        ("first LSTMForecaster().learn_one, fresh process, empty cache",
         f"<= {GOAL_FIRST_S['river']:.0f} s", f"{m['river_cold_s']:.1f} s",
         m["river_cold_s"] <= GOAL_FIRST_S["river"]),
        ("first streamlstm run --source examples/sensor.parquet --out --plot, empty cache",
         f"<= {GOAL_FIRST_S['cli']:.0f} s", f"{m['cli_cold_s']:.1f} s",
         m["cli_cold_s"] <= GOAL_FIRST_S["cli"]),
        ("the same command warm", f"<= {GOAL_CLI_WARM_S:.0f} s", f"{m['cli_warm_s']:.1f} s",
         m["cli_warm_s"] <= GOAL_CLI_WARM_S),
    ]


def report(r):
    import platform
    import numba
    import torch
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; numba "
          f"{numba.__version__} ({numba.get_num_threads()} threads), numpy {np.__version__}, "
          f"torch {torch.__version__} (1 thread), Python {platform.python_version()}")
    print(f"medians of {r['reps']} repeats, us per observation\n")
    step_x = r["torch_us"] / r["step_us"]
    goal_fc = DEEPRIVER_US / GOAL_FORECASTER_X
    rows = [
        ("OnlineRNN.step, 1 series, H=32, TBPTT(16,16), Adam, float64",
         f">= {GOAL_STEP_X:.0f}x PyTorch LSTMCell loop (<= {r['torch_us'] / GOAL_STEP_X:.2f} us)",
         f"{r['step_us']:.2f} us; PyTorch {r['torch_us']:.1f} us -> {step_x:.1f}x",
         step_x >= GOAL_STEP_X),
    ]
    load = r["torch_us"] / ISSUE_TORCH_US                 # this run's PyTorch / the quiet run's
    anchor = DEEPRIVER_US * load
    print(f"PyTorch loop {r['torch_us']:.1f} us here vs {ISSUE_TORCH_US:.0f} us in the issue's "
          f"quiet run: deep-river's {DEEPRIVER_US:.0f} us is taken as {anchor:.0f} us here\n")
    for name, key in (("LSTMForecaster() learn_one + forecast(1)", "forecaster_us"),
                      ("LSTMForecaster(coverage=None) learn_one + forecast(1)",
                       "forecaster_nocov_us"),
                      ("MultiSeriesForecaster().predict_learn, 1 row per call",
                       "predict_learn_us")):
        us = r[key]
        rows.append((name, f">= {GOAL_FORECASTER_X:.0f}x deep-river (<= {goal_fc:.1f} us "
                           f"quiet, {anchor / GOAL_FORECASTER_X:.1f} us here)",
                     f"{us:.2f} us -> {anchor / us:.0f}x ({DEEPRIVER_US / us:.0f}x the raw "
                     f"{DEEPRIVER_US:.0f} us)", anchor / us >= GOAL_FORECASTER_X))
    extra = r["forecaster_nocov_us"] - r["forecaster_alone_us"]
    rows.append(("the experts' aggregation (issue 11): LSTMForecaster(coverage=None) minus "
                 "the same with experts=None", f"<= {GOAL_EXPERTS_US:.0f} us",
                 f"{r['forecaster_nocov_us']:.2f} - {r['forecaster_alone_us']:.2f} = "
                 f"{extra:.2f} us", extra <= GOAL_EXPERTS_US))
    extra_iv = r["forecaster_us"] - r["forecaster_nocov_us"]
    rows.append(("the intervals (issue 12), H=1: LSTMForecaster() minus "
                 "LSTMForecaster(coverage=None)", f"<= {GOAL_INTERVALS_US:.0f} us per step",
                 f"{r['forecaster_us']:.2f} - {r['forecaster_nocov_us']:.2f} = "
                 f"{extra_iv:.2f} us", extra_iv <= GOAL_INTERVALS_US))
    if "more" in r:
        rows += more_rows(r["more"])
    print("| what a user calls | target | measured | status |")
    print("|---|---|---|---|")
    for name, target, measured, ok in rows:
        status = "met" if ok else "missed"
        print(f"| {name} | {target} | {measured} | {status} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer observations and repeats")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--all", action="store_true",
                    help="also the 10,000-series row and the first-run rows (a few minutes more)")
    args = ap.parse_args(argv)
    r = bench(args.quick)
    if args.all:
        r["more"] = bench_more(args.quick)
    report(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
