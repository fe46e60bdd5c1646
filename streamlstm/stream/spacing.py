"""Each series' time step, inferred from its timestamps, to say *when* a forecast
``h`` rows ahead falls: ``last time + h * spacing``.

``Spacing`` keeps, per series, the differences between its last ``KEEP + 1``
accepted timestamps (a ring, updated row by row in arrival order: batching never
changes it) and calls the series' spacing their lower median: an interval the
series really had, not fooled by an occasional gap (a missing hour counts as two)
or by jitter.  A series with a single row has no spacing (NaN).
"""
from __future__ import annotations

import numpy as np

from streamlstm.backends.specialize import njit

KEEP = 8


@njit(cache=True)
def _track(index, t, last, seen, ring, n):
    """Add the differences of rows ``index``/``t`` (arrival order) to each series'
    ring; ``last``/``seen``: each series' latest time before these rows (updated)."""
    K = ring.shape[1]
    for r in range(index.size):
        s = index[r]
        if seen[s]:
            ring[s, n[s] % K] = t[r] - last[s]
            n[s] += 1
        last[s] = t[r]
        seen[s] = True


class Spacing:
    """The time step of every series (module docstring).

    >>> sp = Spacing()
    >>> sp.update(np.array([0, 1, 0, 0, 0]), np.array([0, 5, 10, 30, 40]),
    ...           np.zeros(0), np.zeros(0, dtype=bool))
    >>> sp.spacing().tolist()
    [10.0, nan]
    """

    def __init__(self):
        self.ring = np.zeros((0, KEEP))
        self.n = np.zeros(0, dtype=np.int64)

    def update(self, index, t, last, seen):
        """Rows of series ``index`` (dense, arrival order) at times ``t`` (int64 or
        float64); ``last``, ``seen``: the series' latest accepted time before these
        rows and whether there is one (shorter than the new series count: the rest
        are new series)."""
        if not index.size:
            return
        need = int(index.max()) + 1
        if need > self.n.size:
            extra = need - self.n.size
            self.ring = np.concatenate([self.ring, np.zeros((extra, KEEP))])
            self.n = np.concatenate([self.n, np.zeros(extra, dtype=np.int64)])
        S = self.n.size
        # Differences in the times' own type (int64 ns are exact), stored as float64.
        dtype = np.float64 if np.asarray(t).dtype.kind == "f" else np.int64
        prev = np.zeros(S, dtype=dtype)
        prev[:min(S, len(last))] = np.asarray(last)[:S]
        known = np.zeros(S, dtype=bool)
        known[:min(S, len(seen))] = np.asarray(seen, dtype=bool)[:S]
        _track(np.ascontiguousarray(index, dtype=np.int64), np.ascontiguousarray(t, dtype=dtype),
               prev, known, self.ring, self.n)

    def spacing(self):
        """(S,) each series' lower-median interval between its recent timestamps
        (NaN with fewer than two rows)."""
        out = np.full(self.n.size, np.nan)
        for s, k in enumerate(np.minimum(self.n, KEEP).tolist()):
            if k:
                out[s] = np.sort(self.ring[s, :k])[(k - 1) // 2]
        return out

    def state(self):
        return {"ring": self.ring, "n": self.n}

    @classmethod
    def from_state(cls, arrays):
        self = cls()
        self.ring = np.array(arrays["ring"], dtype=np.float64).reshape(-1, KEEP)
        self.n = np.array(arrays["n"], dtype=np.int64).reshape(-1)
        return self
