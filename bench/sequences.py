"""Can the default forecaster learn a clean, deterministic sequence?

The seed experiment of the stateful LSTM, through the River API with defaults:
``LSTMForecaster()`` is fed a sequence again and again (``--passes`` times),
then, for one more pass, asked ``forecast(1)`` before each value (and learns it,
as a stream would).  A forecast is right when within 0.5 of the true value.

* alphabet: A..Z as the numbers 0..25, repeated (26 transitions, Z -> A included);
* there and back: 0..25..1 (50 values), repeated: every inner value occurs going
  up and going down, so the last value alone cannot tell the next one; the
  recurrent state must.

Also ``GRUForecaster()``, and the warm start of ``examples/warm_start.py``:
through ``MultiSeriesForecaster(scaling="global")``, trained on series "a" (the
alphabet), a new series "b" fed A..K is forecast L.

    python bench/sequences.py                # 300 passes, prints the counts
    python bench/sequences.py --passes 100
    python bench/sequences.py --river        # also the defaults' MAE on River's series

``--river``: the mean over horizon steps of River's ``evaluate.evaluate`` MAE on
AirlinePassengers (h=12), WaterFlow (h=24) and TrumpApproval (h=7), the data the
defaults were checked on (not chosen on: the held-out panel is bench/accuracy.py's).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import streamlstm  # noqa: E402

ALPHABET = list(range(26))
THERE_AND_BACK = list(range(26)) + list(range(24, 0, -1))


def sequence_hits(seq, passes, make=None, **kw):
    """(right, len(seq), forecasts): learn ``passes`` repetitions of ``seq``, then
    forecast each next value of one more pass (learning it after)."""
    model = (make or streamlstm.LSTMForecaster)(**kw)
    for _ in range(passes):
        for v in seq:
            model.learn_one(float(v))
    right, got = 0, []
    for i in range(len(seq)):
        f = model.forecast(1)[0]
        truth = seq[i]
        right += abs(f - truth) <= 0.5
        got.append(f)
        model.learn_one(float(truth))
    return right, len(seq), got


def river_maes(make):
    """{dataset: mean MAE over the horizon steps} under River's evaluate protocol."""
    import statistics

    from river import datasets, evaluate, metrics
    out = {}
    for ds, h in ((datasets.AirlinePassengers(), 12), (datasets.WaterFlow(), 24),
                  (datasets.TrumpApproval(), 7)):
        last = None
        for *_, hm in evaluate.iter_evaluate(ds, make(), metrics.MAE(), horizon=h):
            last = hm
        out[type(ds).__name__] = statistics.mean(m.get() for m in last.metrics)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--passes", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--river", action="store_true", help="also River datasets' MAE")
    a = p.parse_args(argv)
    for cls in ("LSTMForecaster", "GRUForecaster"):
        for name, seq in (("alphabet", ALPHABET), ("there and back", THERE_AND_BACK)):
            t0 = time.perf_counter()
            right, n, got = sequence_hits(seq, a.passes, make=getattr(streamlstm, cls),
                                          seed=a.seed)
            print(f"{cls}() {name}: {right}/{n} within 0.5 after {a.passes} passes "
                  f"({time.perf_counter() - t0:.1f} s); worst error "
                  f"{max(abs(g - t) for g, t in zip(got, seq)):.2f}")
    spec = importlib.util.spec_from_file_location("warm_start",
                                                  HERE.parent / "examples" / "warm_start.py")
    ws = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ws)
    for scaling in ("global", "series"):
        after_z, b_next = ws.warm_start(scaling, a.passes)
        print(f"warm start, MultiSeriesForecaster(scaling={scaling!r}): new series b fed "
              f"A..K forecasts {b_next:.2f} (L = 11)")
    if a.river:
        for cls in ("LSTMForecaster", "GRUForecaster"):
            maes = river_maes(lambda: getattr(streamlstm, cls)(seed=a.seed))
            print(f"{cls}() MAE: " + ", ".join(f"{k} {v:.3f}" for k, v in maes.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
