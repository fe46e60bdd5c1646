"""``scaling="global"``: one model-wide scaler, so that what the network learned
on one series carries over to another (the seed experiment: trained on the
alphabet as series "a", a new series "b" fed A..K is forecast L); batching,
resume and rollouts stay bit for bit; old checkpoints load as "series"; the CLI's
``--scaling`` and ``inspect``."""
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import streamlstm
from _streamdata import FAST, write_sensor_file
from streamlstm import InputError
from streamlstm.cli.app import main
from streamlstm.core import checkpoint
from streamlstm.errors import CheckpointError
from streamlstm.forecast.features import Y_MEAN, Y_N
from streamlstm.forecast.multiseries import MultiSeriesForecaster


def make(**kw):
    kw.setdefault("hidden_size", 6)
    kw.setdefault("k1", 2)
    kw.setdefault("k2", 5)
    kw.setdefault("scaling", "global")
    return MultiSeriesForecaster(**kw)


def stream(R=90, seed=0, F=2):
    """Interleaved series at different levels that join at different times."""
    rng = np.random.default_rng(seed)
    ids, ys = [], []
    t = np.zeros(4)
    for r in range(R):
        s = int(rng.integers(0, min(4, 1 + r // 10)))
        t[s] += 1
        ids.append(["a", "b", 7, "d"][s])
        ys.append(np.nan if rng.random() < 0.1 else
                  100.0 * (s + 1) + 10 * np.sin(t[s] / 3.0) + rng.normal())
    return ids, np.array(ys), rng.normal(size=(R, F))


def warm_start(scaling, seed=0):
    """Train on series "a" = the alphabet as 0..25 (300 passes), then replay A..K
    as a new series "b": its forecast of the next value (L = 11)."""
    m = MultiSeriesForecaster(scaling=scaling, seed=seed, k1=1, k2=8, differencing=True,
                              optimizer=streamlstm.Adam(lr=0.01, betas=(0.99, 0.9999)))
    frame = pd.DataFrame({"series_id": "a", "value": np.tile(np.arange(26.0), 300)})
    m.learn_many(frame)
    m.learn_many(pd.DataFrame({"series_id": "b", "value": np.arange(11.0)}))
    return m.forecast(1, series="b")["b"][0]


def test_warm_start_a_new_series_continues_the_alphabet():
    assert abs(warm_start("global") - 11.0) <= 0.5
    # per-series scaling puts "b" in other units than the ones the model learned
    assert abs(warm_start("series") - 11.0) > 0.5


@pytest.mark.parametrize("horizon", [1, 3])
def test_global_batched_equals_row_by_row(horizon):
    ids, y, X = stream()
    kw = dict(horizon=horizon, features=["f0", "f1"], differencing=horizon == 3)
    a = make(**kw)
    out = a.predict_learn(ids, y, X)
    b = make(**kw)
    rows = [b.predict_learn(ids[r:r + 1], y[r:r + 1], X[r:r + 1]) for r in range(len(ids))]
    c = make(**kw)
    cuts = [0, 7, 8, 40, 41, 77, len(ids)]
    parts = [c.predict_learn(ids[i:j], y[i:j], X[i:j]) for i, j in zip(cuts, cuts[1:])]
    np.testing.assert_array_equal(out, np.vstack(rows))
    np.testing.assert_array_equal(out, np.vstack(parts))
    assert a.forecast(4) == b.forecast(4) == c.forecast(4)


def test_global_scaler_is_one_running_mean_of_every_row(tmp_path):
    ids, y, X = stream(F=0)
    m = make()
    m.predict_learn(ids, y)
    m.save(tmp_path / "g.ckpt")
    _, arrays = checkpoint.read(tmp_path / "g.ckpt")
    g = arrays["gfeat.ystat"]
    assert g.shape[0] == 1 and g[0, Y_N] == np.isfinite(y).sum()
    np.testing.assert_allclose(g[0, Y_MEAN], np.nanmean(y), rtol=1e-9)
    # per-series scaling keeps no model-wide scaler
    s = make(scaling="series")
    s.predict_learn(ids, y)
    s.save(tmp_path / "s.ckpt")
    assert not any(k.startswith("gfeat.") for k in checkpoint.read(tmp_path / "s.ckpt")[1])


def test_global_forecasts_are_side_effect_free_and_independent_per_series():
    ids, y, X = stream()
    m = make(features=["f0", "f1"], horizon=2)
    m.predict_learn(ids[:60], y[:60], X[:60])
    xs = np.ones((3, 2))
    alone = m.forecast(3, series="a", xs=xs)["a"]
    together = m.forecast(3, xs=xs)
    assert together["a"] == alone            # rows of a rollout do not share one scaler copy
    twin = make(features=["f0", "f1"], horizon=2)
    twin.predict_learn(ids[:60], y[:60], X[:60])
    np.testing.assert_array_equal(m.predict_learn(ids[60:], y[60:], X[60:]),
                                  twin.predict_learn(ids[60:], y[60:], X[60:]))


def test_global_resume_equals_uninterrupted(tmp_path):
    ids, y, X = stream()
    a = make(horizon=2, features=["f0", "f1"], differencing=True)
    a.predict_learn(ids[:50], y[:50], X[:50])
    a.save(tmp_path / "m.ckpt")
    b = MultiSeriesForecaster.load(tmp_path / "m.ckpt")
    assert b.scaling == "global"
    np.testing.assert_array_equal(a.predict_learn(ids[50:], y[50:], X[50:]),
                                  b.predict_learn(ids[50:], y[50:], X[50:]))
    assert a.forecast(4) == b.forecast(4)
    a.add_features(["f2"])                     # the model-wide feature scaler grows too
    X3 = np.hstack([X, np.ones((len(ids), 1))])
    a.predict_learn(ids, y, X3)
    a.save(tmp_path / "m2.ckpt")
    c = MultiSeriesForecaster.load(tmp_path / "m2.ckpt")
    np.testing.assert_array_equal(a.predict_learn(ids, y, X3), c.predict_learn(ids, y, X3))


def test_old_checkpoint_without_scaling_loads_as_series(tmp_path):
    ids, y, X = stream(F=0)
    m = make(scaling="series")
    m.predict_learn(ids[:50], y[:50])
    m.save(tmp_path / "new.ckpt")
    meta, arrays = checkpoint.read(tmp_path / "new.ckpt")
    del meta["config"]["scaling"]                      # as written before the option existed
    checkpoint.write(tmp_path / "old.ckpt", kind="MultiSeriesForecaster", meta=meta,
                     arrays=arrays)
    old = MultiSeriesForecaster.load(tmp_path / "old.ckpt")
    assert old.scaling == "series"
    np.testing.assert_array_equal(old.predict_learn(ids[50:], y[50:]),
                                  m.predict_learn(ids[50:], y[50:]))


def test_bad_scaling_and_corrupt_global_checkpoint(tmp_path):
    with pytest.raises(InputError, match="scaling='bogus'"):
        MultiSeriesForecaster(scaling="bogus")
    with pytest.raises(InputError, match="trend=True"):
        MultiSeriesForecaster(scaling="global", trend=True)
    m = make()
    m.predict_learn(["a", "b"], [1.0, 2.0])
    m.save(tmp_path / "g.ckpt")
    meta, arrays = checkpoint.read(tmp_path / "g.ckpt")
    del arrays["gfeat.ystat"]
    checkpoint.write(tmp_path / "bad.ckpt", kind="MultiSeriesForecaster", meta=meta,
                     arrays=arrays)
    with pytest.raises(CheckpointError, match="global scaler"):
        MultiSeriesForecaster.load(tmp_path / "bad.ckpt")


def test_cli_scaling_global_is_kept_shown_and_checked_on_resume(tmp_path):
    src = tmp_path / "s.parquet"
    write_sensor_file(src, sensors=3, steps=30, seed=2, row_group_rows=40)
    ck = tmp_path / "ck"
    run = CliRunner().invoke(main, ["run", *FAST, "--source", str(src), "--checkpoint",
                                    str(ck), "--scaling", "global"], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    res = CliRunner().invoke(main, ["inspect", str(ck)])
    assert res.exit_code == 0 and "scaling=global" in res.stdout, res.output
    res = CliRunner().invoke(main, ["run", *FAST, "--source", str(src), "--checkpoint",
                                    str(ck)])
    assert res.exit_code == 1 and "--scaling" in res.stderr, res.output
    ck2 = tmp_path / "ck2"
    res = CliRunner().invoke(main, ["run", *FAST, "--source", str(src), "--checkpoint",
                                    str(ck2)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["inspect", str(ck2)])
    assert "scaling=series" in res.stdout, res.output


def test_cli_resumes_a_checkpoint_from_before_the_option(tmp_path):
    src = tmp_path / "s.parquet"
    write_sensor_file(src, sensors=3, steps=30, seed=2, row_group_rows=40)
    ck = tmp_path / "ck"
    args = ["run", *FAST, "--source", str(src), "--checkpoint", str(ck)]
    assert CliRunner().invoke(main, args).exit_code == 0
    path = ck / "checkpoint.slstm"
    meta, arrays = checkpoint.read(path)
    del meta["config"]["scaling"]                     # the model's config, and the run's
    del meta["extra"]["meta"]["config"]["scaling"]
    checkpoint.write(path, kind="MultiSeriesForecaster", meta=meta, arrays=arrays)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, args + ["--scaling", "global"])
    assert res.exit_code == 1 and "--scaling" in res.stderr, res.output
    res = CliRunner().invoke(main, ["inspect", str(ck)])
    assert "scaling=series" in res.stdout, res.output
