"""The River forecaster per value at a horizon: the one-row compiled calls
(``forecast/onerow.py``) against the general path they replace, in one process.

    python bench/horizon.py            # about two minutes once the kernels are compiled
    python bench/horizon.py --quick    # fewer values and repeats (a smoke test)

(a) ``LSTMForecaster`` ``learn_one(y)`` + ``forecast(h)`` per value, h = 1, 4, 12,
    with the defaults, ``coverage=None`` and the network alone
    (``coverage=None, experts=None``): us per value, and what the intervals and the
    experts add (issue 12: at most 1 us per observation per horizon step; issue 11:
    at most 2 us at h = 1).
(b) River's own ``evaluate.evaluate(dataset, LSTMForecaster(), MAE(), horizon=h)``
    on AirlinePassengers, WaterFlow (h = 12) and TrumpApproval (h = 7), us per value.

The reference is the general path, the same models in the same process with the
one-row calls switched off (``OnlineRNN.cpu_kernel_args`` answering None, as on any
other backend): the same bits (tests/test_onerow.py), so the ratio is what the
one-row calls save.  Medians of round-robin repeats; the first calls (compilation)
are excluded.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import core  # noqa: E402  (interleaved_medians)

import streamlstm  # noqa: E402
from streamlstm.core.online_rnn import OnlineRNN  # noqa: E402

CONFIGS = {"defaults": {}, "coverage=None": {"coverage": None},
           "network alone": {"coverage": None, "experts": None}}
EVALUATE = (("AirlinePassengers", 12), ("WaterFlow", 12), ("TrumpApproval", 7))


@contextlib.contextmanager
def general_path():
    """The one-row calls switched off: every call takes the general path."""
    kept = OnlineRNN.cpu_kernel_args
    OnlineRNN.cpu_kernel_args = lambda self: None
    try:
        yield
    finally:
        OnlineRNN.cpu_kernel_args = kept


def values(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    return (100.0 + 10.0 * np.sin(0.1 * t) + rng.normal(size=n)).tolist()


def per_value(quick):
    """(a): {h: {config: {"onerow": us, "general": us}}}."""
    reps, block = (3, 200) if quick else (7, 1000)
    ys = values(reps * block + 300)
    out = {}
    for h in (1, 4, 12):
        runners, keys = [], []
        for name, kw in CONFIGS.items():
            for path in ("onerow", "general"):
                model = streamlstm.LSTMForecaster(**kw)
                pos = {"t": 0}

                def run(model=model, pos=pos, general=path == "general", n=block):
                    with general_path() if general else contextlib.nullcontext():
                        a = pos["t"]
                        for v in ys[a:a + n]:
                            model.learn_one(v)
                            model.forecast(h)
                        pos["t"] = a + n
                run(n=300)                                  # compile / load, warm up
                runners.append(run)
                keys.append((name, path))
        ts = core.interleaved_medians(runners, reps)
        out[h] = {}
        for (name, path), t in zip(keys, ts):
            out[h].setdefault(name, {})[path] = t / block * 1e6
    return out


def river_evaluate(quick):
    """(b): {dataset: {"onerow": us, "general": us}} per value."""
    from river import datasets, evaluate, metrics
    reps = 2 if quick else 5
    out = {}
    for name, h in EVALUATE:
        ds = getattr(datasets, name)()
        n = sum(1 for _ in ds)

        def run(general, ds=ds, h=h):
            with general_path() if general else contextlib.nullcontext(), \
                    contextlib.redirect_stdout(io.StringIO()):
                evaluate.evaluate(ds, streamlstm.LSTMForecaster(), metrics.MAE(), horizon=h)
        run(False)
        run(True)                                           # compile / load
        t_one, t_gen = core.interleaved_medians([lambda: run(False), lambda: run(True)], reps)
        out[name] = {"h": h, "onerow": t_one / n * 1e6, "general": t_gen / n * 1e6}
    return out


def report(a, b):
    print("(a) LSTMForecaster learn_one + forecast(h), us per value "
          "(one-row calls / general path)\n")
    print("| h | " + " | ".join(CONFIGS) + " | intervals add | per step | experts add |")
    print("|---:|" + "---:|" * (len(CONFIGS) + 3))
    for h, row in a.items():
        cells = [f"{row[c]['onerow']:.1f} / {row[c]['general']:.1f} "
                 f"({row[c]['general'] / row[c]['onerow']:.1f}x)" for c in CONFIGS]
        iv = row["defaults"]["onerow"] - row["coverage=None"]["onerow"]
        ex = row["coverage=None"]["onerow"] - row["network alone"]["onerow"]
        print(f"| {h} | " + " | ".join(cells) + f" | {iv:.2f} | {iv / h:.2f} | {ex:.2f} |")
    print("\n(with experts the model also rolls its forecast out at every learn_one, to "
          "score each step: at h > 1 that is part of what they add)\n")
    print("(b) river.evaluate.evaluate(dataset, LSTMForecaster(), MAE(), horizon=h), "
          "us per value\n")
    print("| dataset | h | one-row calls | general path | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, r in b.items():
        print(f"| {name} | {r['h']} | {r['onerow']:.0f} | {r['general']:.0f} | "
              f"{r['general'] / r['onerow']:.1f}x |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer values and repeats")
    args = ap.parse_args(argv)
    report(per_value(args.quick), river_evaluate(args.quick))


if __name__ == "__main__":
    main()
