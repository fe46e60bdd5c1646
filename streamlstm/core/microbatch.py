"""Micro-batching rows that arrive one at a time into as few ``step`` calls as
possible without changing a single bit of the result (``OnlineRNN.step_rows``)."""
import numpy as np

from streamlstm.backends.specialize import njit


@njit(cache=True)
def _group_rows(series, counts, k1, seen):
    R = series.shape[0]
    offsets = np.empty(R + 1, dtype=np.int64)
    offsets[0] = 0
    n_calls = 0
    start = 0
    pending = counts.copy()  # counts as they will be after the rows so far
    for r in range(R):
        s = series[r]
        # A slot may appear only once per call: a repeat opens a new call.
        if seen[s] == n_calls + 1:
            n_calls += 1
            offsets[n_calls] = r
            start = r
        seen[s] = n_calls + 1
        pending[s] += 1
        # A due row ends its call: the update must happen before the next row's
        # forward, exactly as when the rows are stepped one by one.
        if pending[s] % k1 == 0:
            n_calls += 1
            offsets[n_calls] = r + 1
            start = r + 1
    if start < R:
        n_calls += 1
        offsets[n_calls] = R
    return offsets[:n_calls + 1].copy()


def group_rows(series: np.ndarray, counts: np.ndarray, k1: int) -> np.ndarray:
    """Call offsets (C+1,) for the row sequence ``series`` given the slots' current
    step ``counts``: a call closes before a repeated slot and right after a row
    whose slot becomes due (its count reaches a multiple of ``k1``)."""
    seen = np.zeros(counts.shape[0], dtype=np.int64)
    return _group_rows(np.ascontiguousarray(series, dtype=np.int64),
                       np.ascontiguousarray(counts, dtype=np.int64), int(k1), seen)
