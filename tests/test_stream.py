"""The source-agnostic runner: micro-batched = row by row, snapshot/restore =
uninterrupted, and the data policy (policy.py) row by row."""
import numpy as np
import pytest

from _streamdata import FAST_MODEL, sensor_table
from streamlstm.stream.policy import DataError, Policy
from streamlstm.io.files import FrameSource
from streamlstm.stream.batch import RowBatch
from streamlstm.stream.runner import StreamRunner, forecaster_class


def new_runner(policy=None, horizon=1, features=None, window=50):
    M = forecaster_class()
    return StreamRunner(M(horizon=horizon, features=features, **FAST_MODEL), policy, window)


@pytest.fixture(scope="module")
def frame():
    return sensor_table(sensors=5, steps=60, seed=3).to_pandas()


def run_all(runner, source, batch_rows, score=True):
    out = []
    for b in source.batches(batch_rows=batch_rows):
        fc = runner.process(b, score=score)
        out.append(np.column_stack([b.rows[fc.keep], fc.yhat]))
    return np.concatenate(out)


def state_bytes(runner, tmp_path, name):
    p = tmp_path / name
    runner.snapshot(p, position={"row": 0})
    return p.read_bytes()


@pytest.mark.parametrize("features", [(), ("outside_temp",)])
def test_micro_batched_equals_row_by_row(frame, features):
    from streamlstm.io.files import Columns
    src = FrameSource(frame, Columns(features=features))
    ref = run_all(new_runner(features=list(features) or None), src, batch_rows=1)
    assert ref.shape[0] == len(frame)
    # Only a series' first row has no forecast (nothing seen yet).
    first = ~frame.duplicated("series_id").to_numpy()
    np.testing.assert_array_equal(np.isnan(ref[:, 1]), first)
    summaries = []
    for batch_rows in (7, 64, 10_000):
        r = new_runner(features=list(features) or None)
        got = run_all(r, src, batch_rows)
        np.testing.assert_array_equal(got, ref)  # bit for bit
        summaries.append(r.metrics.summary())
    assert summaries[0] == summaries[1] == summaries[2]


def test_snapshot_restore_equals_uninterrupted(frame, tmp_path):
    src = FrameSource(frame)
    full_runner = new_runner()
    full = run_all(full_runner, src, batch_rows=40)
    for cut in (1, 4):
        r = new_runner()
        got = []
        for k, b in enumerate(src.batches(batch_rows=40)):
            fc = r.process(b)
            got.append(np.column_stack([b.rows[fc.keep], fc.yhat]))
            if k == cut:
                r.snapshot(tmp_path / "s.ckpt", position={"row": int(b.position)}, meta={"x": 1})
                break
        r2, pos, meta = StreamRunner.restore(tmp_path / "s.ckpt")
        assert meta == {"x": 1} and pos == {"row": 40 * (cut + 1)}
        for b in src.batches(start=pos["row"], batch_rows=40):
            fc = r2.process(b)
            got.append(np.column_stack([b.rows[fc.keep], fc.yhat]))
        np.testing.assert_array_equal(np.concatenate(got), full)
        assert r2.metrics.summary() == full_runner.metrics.summary()
        assert r2.ids == full_runner.ids
        np.testing.assert_array_equal(r2.last_time, full_runner.last_time)


def test_metrics_are_checkpointed_as_arrays_not_pickle(frame, tmp_path, monkeypatch):
    """The metrics go into the checkpoint as numbers and float arrays; restoring
    never unpickles, and the restored metrics continue exactly."""
    import pickle
    from streamlstm.core import checkpoint
    r = new_runner()
    batches = list(FrameSource(frame).batches(batch_rows=70))
    r.process(batches[0])
    r.snapshot(tmp_path / "m.ckpt")
    _, arrays = checkpoint.read(tmp_path / "m.ckpt")
    metric_arrays = {k: v for k, v in arrays.items() if ".metrics." in k}
    assert {"extra.runner.metrics.per_series", "extra.runner.metrics.ring"} <= set(metric_arrays)
    assert all(v.dtype.kind in "fi" for v in metric_arrays.values())
    monkeypatch.setattr(pickle, "loads", lambda *a: pytest.fail("restore unpickled"))
    r2, _, _ = StreamRunner.restore(tmp_path / "m.ckpt")
    for b in batches[1:]:
        r.process(b)
        r2.process(b)
    assert r2.metrics.summary() == r.metrics.summary()
    assert r2.metrics.state()[0] == r.metrics.state()[0]
    for k, v in r.metrics.state()[1].items():
        np.testing.assert_array_equal(r2.metrics.state()[1][k], v)


@pytest.mark.parametrize("version, fix", [(1, "written by an older streamlstm"),
                                          (99, "upgrade streamlstm")])
def test_other_stream_checkpoint_versions_are_refused_with_the_right_advice(
        frame, tmp_path, version, fix):
    from streamlstm import CheckpointError
    from streamlstm.core import checkpoint
    r = new_runner()
    r.process(next(FrameSource(frame).batches(batch_rows=30)))
    path = tmp_path / "v.ckpt"
    r.snapshot(path)
    meta, arrays = checkpoint.read(path)
    meta["extra"]["runner"]["version"] = version
    checkpoint.write(path, kind="MultiSeriesForecaster", meta=meta, arrays=arrays)
    with pytest.raises(CheckpointError, match=f"version {version}.*{fix}"):
        StreamRunner.restore(path)


def test_missing_target_is_forecast_but_not_scored():
    r = new_runner()
    b = RowBatch(ids=np.array(["a", "a", "a"], dtype=object), time=np.array([1, 2, 3]),
                 y=np.array([1.0, np.nan, 2.0]))
    fc = r.process(b)
    assert fc.keep.tolist() == [0, 1, 2] and np.isfinite(fc.yhat[1:]).all()
    # Row 0 has no forecast yet (first of its series), row 1 no target.
    assert r.metrics.scored == 1 and r.metrics.missing == 1 and r.metrics.unforecast == 1


def batch(ids, t, y, X=None, **kw):
    return RowBatch(ids=np.array(ids, dtype=object), time=np.asarray(t, dtype=np.int64),
                    y=np.asarray(y, dtype=float), X=None if X is None else np.asarray(X, float),
                    origin="data.parquet", feature_names=("f",) if X is not None else (), **kw)


def test_infinite_target_error_names_row_column_value():
    r = new_runner()
    b = batch(["a", "b", "a"], [1, 1, 2], [1.0, 2.0, np.inf], rows=np.array([10, 11, 12]))
    with pytest.raises(DataError) as e:
        r.process(b)
    msg = str(e.value)
    assert "data.parquet, row 12" in msg and "'value'" in msg and "inf" in msg
    assert "--on-bad-row skip" in msg
    assert e.value.row == 12 and e.value.column == "value"
    assert r.rows_in == 0 and r.n_series == 0  # nothing committed


def test_skip_counts_and_drops_bad_rows():
    r = new_runner(Policy(on_bad_row="skip"), features=["f"])
    b = batch(["a", "a", "b", "a"], [1, 2, 1, 3], [1.0, np.inf, 2.0, 3.0],
              X=[[0.0], [0.0], [np.nan], [1.0]])
    fc = r.process(b)
    assert fc.keep.tolist() == [0, 3]
    assert dict(r.skipped) == {"infinite target": 1, "non-finite feature": 1}
    assert r.ids == ["a"]  # 'b' had no accepted row: not registered


@pytest.mark.parametrize("horizon", [1, 3])
def test_a_batch_whose_every_row_is_skipped(horizon):
    """Every row of a batch dropped by the policy: no forecasts, nothing learned,
    the skips counted (issue 14.1: this was a reshape traceback)."""
    r = new_runner(Policy(on_bad_row="skip"), horizon=horizon)
    r.process(batch(["a", "b"], [1, 1], [1.0, 2.0]))
    fc = r.process(batch(["a", "b", "a"], [1, 1, 0], [5.0, 6.0, 7.0]))
    assert fc.keep.size == 0 and fc.yhat.shape == (0, horizon)
    assert r.skipped == {"duplicate timestamp": 2, "out-of-order timestamp": 1}
    assert r.rows_forecast == 2 and r.rows_in == 5
    fc = r.process(batch(["a"], [2], [3.0]))            # and the stream goes on
    assert fc.keep.tolist() == [0] and np.isfinite(fc.yhat).all()


def test_nonfinite_feature_error_names_the_feature():
    r = new_runner(features=["f"])
    with pytest.raises(DataError, match=r"row 1, column 'f': non-finite feature \(value nan\)"):
        r.process(batch(["a", "b"], [1, 1], [1.0, 2.0], X=[[0.0], [np.nan]]))


@pytest.mark.parametrize("t, reason", [([1, 2, 2], "duplicate timestamp"),
                                       ([1, 3, 2], "out-of-order timestamp")])
def test_time_order_errors(t, reason):
    r = new_runner()
    with pytest.raises(DataError, match=f"row 2, column 'timestamp': {reason}"):
        r.process(batch(["a", "a", "a"], t, [1.0, 2.0, 3.0]))


def test_time_order_is_sequential_per_series_and_across_batches():
    r = new_runner(Policy(on_bad_row="skip"))
    # a: 1, 5 accepted; 3 and 4 are before 5; 6 accepted.  b is independent.
    fc = r.process(batch(["a", "a", "b", "a", "a", "a"], [1, 5, 2, 3, 4, 6], np.ones(6)))
    assert fc.keep.tolist() == [0, 1, 2, 5]
    assert r.skipped["out-of-order timestamp"] == 2
    fc = r.process(batch(["a", "b"], [6, 3], [1.0, 1.0]))  # 6 again for a: duplicate
    assert fc.keep.tolist() == [1] and r.skipped["duplicate timestamp"] == 1


def test_rejected_batch_changes_nothing(tmp_path):
    r = new_runner()
    r.process(batch(["a", "b"], [1, 1], [1.0, 2.0]))
    before = state_bytes(r, tmp_path, "before")
    for bad in (batch(["c", "a", "a"], [1, 2, 2], [1.0, 1.0, 1.0]),       # duplicate
                batch(["c", "a"], [1, 2], [1.0, np.inf])):                 # infinite target
        with pytest.raises(DataError):
            r.process(bad)
        assert state_bytes(r, tmp_path, "after") == before


@pytest.mark.parametrize("mode", ["allow", "skip", "error"])
def test_new_series_policy(mode):
    r = new_runner(Policy(new_series=mode))
    r.process(batch(["a", "b"], [1, 1], [1.0, 2.0]), score=False)
    r.mark_history()
    live = batch(["a", "zz", "b"], [2, 2, 2], [1.0, 5.0, 2.0])
    if mode == "error":
        with pytest.raises(DataError, match=r"row 1: series not in history \(value 'zz'\); "
                                            r"pass --new-series allow"):
            r.process(live)
        return
    fc = r.process(live)
    if mode == "allow":
        assert fc.keep.tolist() == [0, 1, 2] and r.ids == ["a", "b", "zz"]
    else:
        assert fc.keep.tolist() == [0, 2] and r.skipped["series not in history"] == 1
        assert "zz" not in r.ids


def test_missing_ids_are_bad_rows():
    r = new_runner()
    with pytest.raises(DataError, match="missing series id"):
        r.process(batch(["a", None], [1, 1], [1.0, 2.0]))


def test_time_kind_must_not_change():
    r = new_runner()
    r.process(batch(["a"], [1], [1.0], time_kind="datetime"))
    with pytest.raises(ValueError, match="holds int timestamps but earlier rows"):
        r.process(batch(["a"], [2], [1.0], time_kind="int"))


def test_horizon_columns_and_arrow_table():
    r = new_runner(horizon=3)
    fc = r.process(batch(["a", "b", "a"], [1, 1, 2], [1.0, 2.0, 3.0]))
    assert fc.yhat.shape == (3, 3)
    t = fc.to_arrow()
    assert t.column_names == ["series_id", "timestamp", "y", "yhat", "yhat_h2", "yhat_h3"]
    assert t.column("series_id").to_pylist() == ["a", "b", "a"]


def test_restore_refuses_a_plain_model_checkpoint(tmp_path):
    from streamlstm import CheckpointError, OnlineRNN
    net = OnlineRNN(1, 2, backend="reference")
    net.save(tmp_path / "m.ckpt")
    with pytest.raises(CheckpointError):
        StreamRunner.restore(tmp_path / "m.ckpt")
