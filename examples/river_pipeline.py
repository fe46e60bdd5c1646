"""streamlstm estimators inside River pipelines, scored with River's own evaluation.

1. ``LSTMForecaster()`` on the raw AirlinePassengers series (x = {'month': datetime})
   beside River's ``HoltWinters`` (its docstring settings), ``evaluate.evaluate``;
2. a pipeline: calendar features built from the datetime, scaled by River's
   ``StandardScaler``, joined with the datetime itself (so the forecaster still
   infers the season and aligns forecasts to the asked-for months), then the LSTM;
3. ``LSTMRegressor`` after ``Select | StandardScaler`` on TrumpApproval with
   ``evaluate.progressive_val_score``, beside a running-mean baseline.

Run:  python examples/river_pipeline.py      (about half a minute)
"""
import math
import statistics

from river import compose, datasets, dummy, evaluate, metrics, preprocessing, stats, time_series

import streamlstm


def mean_mae(horizon_metric):
    return statistics.mean(m.get() for m in horizon_metric.metrics)


def calendar(x):
    """Numeric features of the month: its position in the year as sin/cos."""
    a = 2 * math.pi * (x["month"].month - 1) / 12
    return {"month_sin": math.sin(a), "month_cos": math.cos(a)}


def main():
    print("1. AirlinePassengers, horizon 12, mean MAE over the 12 steps")
    lstm = streamlstm.LSTMForecaster()
    res = evaluate.evaluate(datasets.AirlinePassengers(), lstm, metrics.MAE(), horizon=12)
    hw = time_series.HoltWinters(alpha=0.3, beta=0.1, gamma=0.6, seasonality=12,
                                 multiplicative=True)
    res_hw = evaluate.evaluate(datasets.AirlinePassengers(), hw, metrics.MAE(), horizon=12)
    print(f"   streamlstm LSTMForecaster():  {mean_mae(res):6.2f}  (period inferred: "
          f"{lstm.period_})")
    print(f"   River HoltWinters (docs):     {mean_mae(res_hw):6.2f}")
    print("   per step:", res.metrics[0], "...", res.metrics[-1])

    print("2. the same through a pipeline with River preprocessing")
    model = ((compose.FuncTransformer(calendar) | preprocessing.StandardScaler())
             + compose.Select("month")) | streamlstm.LSTMForecaster()
    res = evaluate.evaluate(datasets.AirlinePassengers(), model, metrics.MAE(), horizon=12)
    print(f"   {model}")
    print(f"   mean MAE {mean_mae(res):6.2f}; the LSTM's numeric inputs: "
          f"{model['LSTMForecaster']._feature_names}")

    print("3. LSTMRegressor in a pipeline, TrumpApproval, progressive validation")
    reg = (compose.Select("ordinal_date", "gallup", "ipsos", "morning_consult", "rasmussen",
                          "you_gov")
           | preprocessing.StandardScaler() | streamlstm.LSTMRegressor())
    mae = evaluate.progressive_val_score(datasets.TrumpApproval(), reg, metrics.MAE())
    base = evaluate.progressive_val_score(datasets.TrumpApproval(),
                                          dummy.StatisticRegressor(stats.Mean()), metrics.MAE())
    print(f"   LSTMRegressor {mae}   running mean {base}")


if __name__ == "__main__":
    main()
