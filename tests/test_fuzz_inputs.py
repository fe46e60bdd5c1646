"""Fuzzing as tests (issue 14.12): damaged CSV and Parquet files and arbitrary
Kafka messages never give a traceback.  A file run ends with exit 0 or with one
``Error:`` line and exit 1; a message is either decoded or becomes a located
problem the data policy handles."""
import json

import numpy as np
import pandas as pd
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from _streamdata import FAST, write_sensor_file
from test_kafka import FakeMessage   # bytes values pass through unchanged
from streamlstm.cli.app import main
from streamlstm.io.kafka.codec import MessageFormat, decode_messages
from streamlstm.stream.policy import DataError, Policy
from streamlstm.stream.runner import StreamRunner, forecaster_class

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _good_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    write_sensor_file(d / "s.parquet", sensors=3, steps=20, seed=4, row_group_rows=16)
    pd.read_parquet(d / "s.parquet").to_csv(d / "s.csv", index=False)
    return d


def _damage(raw, edits, cut):
    b = bytearray(raw)
    for pos, val in edits:
        b[pos % len(b)] = val
    return bytes(b[:max(1, int(len(b) * cut))])


def _run_and_check(path, tmp_path, policy):
    ck = tmp_path / "ck"
    res = CliRunner().invoke(main, ["run", *FAST, "--source", str(path), "--on-bad-row", policy,
                                    "--out", str(tmp_path / "o.parquet"), "--checkpoint", str(ck)])
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    if res.exit_code:
        assert res.exit_code == 1, res.output
        lines = [l for l in res.stderr.splitlines() if l.startswith("Error: ")]
        assert len(lines) == 1 and path.name in lines[0], res.stderr
        assert not (tmp_path / "o.parquet").exists()        # nothing past the last checkpoint


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8)
cuts = st.one_of(st.just(1.0), st.floats(0.05, 1.0))    # whole files too: damage inside pages


@FUZZ
@given(edits=edits, cut=cuts, policy=st.sampled_from(["error", "skip"]))
@example(edits=[(0, 128)], cut=1.0, policy="error")     # found by this test: a non-UTF-8 header
def test_damaged_csv_never_gives_a_traceback(tmp_path_factory, edits, cut, policy):
    d = _good_files(tmp_path_factory)
    bad = d / "bad.csv"
    bad.write_bytes(_damage((d / "s.csv").read_bytes(), edits, cut))
    _run_and_check(bad, d, policy)


@FUZZ
@given(edits=edits, cut=cuts, policy=st.sampled_from(["error", "skip"]))
def test_damaged_parquet_never_gives_a_traceback(tmp_path_factory, edits, cut, policy):
    d = _good_files(tmp_path_factory)
    bad = d / "bad.parquet"
    bad.write_bytes(_damage((d / "s.parquet").read_bytes(), edits, cut))
    _run_and_check(bad, d, policy)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3), max_leaves=6)
fields = st.fixed_dictionaries({}, optional={"series_id": json_values, "timestamp": json_values,
                                             "value": json_values, "temp": json_values})
payloads = st.one_of(fields.map(lambda d: json.dumps(d).encode()), st.binary(max_size=40),
                     json_values.map(lambda v: json.dumps(v).encode()))


@FUZZ
@given(msgs=st.lists(st.tuples(st.one_of(st.none(), st.binary(max_size=6)), payloads),
                     min_size=1, max_size=8))
def test_arbitrary_kafka_messages_are_decoded_or_located(msgs):
    fmt = MessageFormat(features=("temp",))
    origin = "kafka://127.0.0.1:9/t"
    batch = decode_messages([FakeMessage(10 + i, k, v) for i, (k, v) in enumerate(msgs)], fmt,
                            origin, 0)
    assert len(batch) == len(msgs) and batch.rows.tolist() == list(range(10, 10 + len(msgs)))
    M = forecaster_class()
    strict = StreamRunner(M(features=["temp"], hidden_size=3, backend="reference"))
    try:
        strict.process(batch)
    except DataError as e:
        assert f"{origin}, partition 0, offset " in str(e)
        assert strict.rows_in == 0                       # refused: nothing changed
    loose = StreamRunner(M(features=["temp"], hidden_size=3, backend="reference"),
                         Policy(on_bad_row="skip"))
    fc = loose.process(batch)
    assert fc.keep.size + sum(loose.skipped.values()) == len(msgs)
    assert np.isfinite(fc.yhat[~np.isnan(fc.yhat)]).all()
