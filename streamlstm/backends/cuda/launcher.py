"""The CUDA backend: ``OnlineRNN(..., backend="cuda")`` (docs/spec.md; contract: backends/__init__.py).

Kernel -> launcher -> checked wrapper (stumpy): the ``@cuda.jit`` kernels live
in ``forward.py``, ``window.py``, ``grad.py`` and ``optimizer.py``, compiled by
``kernels.py``; this module is the launcher that owns the device
arrays, sizes the grids, orders the launches and keeps the host-side
bookkeeping; ``OnlineRNN`` (core/online_rnn.py) is the checked wrapper that validates
every input before a backend sees it.

What stays on the device between calls: the weights ``theta`` (and a transposed
copy ``wt`` of the recurrent matrices for the forward kernels), the optimizer
moments and step count, and every series' state, window-entry state, window and
counters (layout.py).  A call moves only the slot indices, ``u`` and ``y`` in
(plus the due slots, which the host derives from the slot indices) and ``yhat``
out.  The per-series step counts are mirrored on the host (they
move by exactly one per stepped row), which is what lets the host know which
series are due without asking the device, so no call waits on the GPU until
its ``yhat`` is copied back.  Whether an update happens (M > 0, SPEC 4) is
decided on the device: the kernels read M there.

Per-series device memory is the SPEC arrays only.  The backward temporaries
(re-run activations, output gradients, partial gradients) are sized per chunk
of due series (``config.CHUNK_BYTES``), so one million series at H = 32
never hold one million windows of activations at once.
"""
from __future__ import annotations

import warnings

import numpy as np

from streamlstm.backends.cuda import config as cfg
from streamlstm.backends.cuda.args import Call, Chunk, Due, Model, Optim, Windows
from streamlstm.errors import BackendUnavailableError
from streamlstm.core.layout import (ALL_ARRAYS, INDEX_DTYPE, INT_ARRAYS, SERIES_ARRAYS,
                                    new_series_arrays)



def _first_line(exc) -> str:
    lines = [ln.strip(" :") for ln in str(exc).splitlines() if ln.strip(" :")]
    return "; ".join(lines[:2]) if lines else type(exc).__name__


def gpu_unavailable_reason():
    """None when numba.cuda can run kernels here (a GPU, or the simulator), else why not."""
    try:
        from numba import cuda
        from numba.core import config
    except Exception as exc:  # a broken numba / numba-cuda install
        return f"numba.cuda cannot be imported: {_first_line(exc)}"
    if config.ENABLE_CUDASIM:
        return None
    try:
        return None if len(cuda.gpus) else "no CUDA-capable GPU is visible"
    except Exception as exc:  # CudaSupportError: no driver library, driver init failed, ...
        return _first_line(exc)


def _numba_cuda():
    """``numba.cuda``, or a one-line BackendUnavailableError saying why not and what to do."""
    reason = gpu_unavailable_reason()
    if reason is not None:
        raise BackendUnavailableError(
            f"backend='cuda' needs an NVIDIA GPU with a working CUDA driver, and none was found "
            f"({reason}); use backend='cpu' instead, or set NUMBA_ENABLE_CUDASIM=1 before "
            f"starting Python to run the CUDA kernels in Numba's (slow) simulator")
    from numba import cuda
    return cuda


def _compile(dtype_name, cell, rows_per_thread):
    """The kernels for this model, or a one-line BackendUnavailableError when a GPU
    is present but the CUDA compiler (NVVM) is not."""
    from numba.cuda.cudadrv import error as cuerr

    from streamlstm.backends.cuda.kernels import kernels

    missing_toolkit = tuple(getattr(cuerr, n) for n in ("NvvmSupportError", "CudaSupportError")
                            if hasattr(cuerr, n))
    try:
        return kernels(dtype_name, cell, int(cfg.NORM_LANES), rows_per_thread)
    except missing_toolkit as exc:
        raise BackendUnavailableError(
            f"backend='cuda' found a GPU but cannot compile its kernels ({_first_line(exc)}); "
            f"install the CUDA toolkit's NVVM, e.g. `pip install \"numba-cuda[cu12]\"`, or use "
            f"backend='cpu'") from None
    except AttributeError as exc:
        # Seen on an H200 image: numba-cuda 0.30.4 overloads np.row_stack, which
        # numpy 2.5 removed, so it compiles nothing with numpy 2.5.
        if "module 'numpy' has no attribute" not in str(exc):
            raise
        raise BackendUnavailableError(
            f"backend='cuda' cannot compile its kernels: this numba-cuda does not support "
            f"numpy {np.__version__} ({_first_line(exc)}); install a numpy it supports, e.g. "
            f"`pip install \"numpy<2.5\"`, or use backend='cpu'") from None


# Small calls (a few series) are latency-bound by nature: do not warn on each one.
# By message, not class: numba-cuda raises its own NumbaPerformanceWarning class.
warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU "
                        r"under-utilization")


def _ceil_div(a, b):
    return -(-a // b)


class CUDABackend:
    """Backend contract of ``backends/__init__.py`` with ``@cuda.jit`` kernels and
    device-resident state."""

    name = "cuda"

    def __init__(self, layout, k1, k2, hyper, dtype, arrays):
        self._cuda = cuda = _numba_cuda()
        from streamlstm.backends.cuda.grad import n_grad_tiles, param_table
        from streamlstm.backends.cuda.optimizer import N_UPD

        self.layout, self.k1, self.k2 = layout, int(k1), int(k2)
        self.dtype = np.dtype(dtype).type
        R = int(cfg.ROWS_PER_THREAD)      # compile-time: one kernel set per value
        self._k = _compile(np.dtype(dtype).name, layout.cell, R)
        # launch tunables, read once (speed only; results do not depend on them)
        self._tpb = int(cfg.THREADS_PER_BLOCK)
        self._et = int(cfg.ELEMENTWISE_THREADS)
        self._maxb = int(cfg.MAX_BLOCKS)
        self._chunk_bytes = int(cfg.CHUNK_BYTES)
        # numerics constants (fix the order of the gradient and norm sums)
        self._seg = int(cfg.GRAD_SEGMENT)
        self._lanes = int(cfg.NORM_LANES)
        H = layout.hidden_size
        # series per block of the row-tile kernels: groups of ROWS_PER_THREAD
        self._rb = max(1, self._tpb // H) * R
        self._P = layout.n_params
        self._hw, self._hb = (int(o) for o in layout.head_offsets)
        self._state_elems = layout.n_layers * layout.S * H
        # model-wide device arrays that are not part of the checkpoint
        self._d_offs = cuda.to_device(np.ascontiguousarray(layout.offsets, dtype=np.int64))
        ptab = param_table(layout)
        self._n_tiles = n_grad_tiles(ptab)
        self._d_ptab = cuda.to_device(ptab)
        self._d_hyper = cuda.to_device(np.ascontiguousarray(hyper, dtype=np.float64))
        self._d_M = cuda.to_device(np.zeros(1, dtype=np.int64))
        self._d_upd = cuda.to_device(np.zeros(N_UPD, dtype=np.float64))
        self._d_wt = cuda.to_device(np.zeros(self._P, dtype=self.dtype))
        self._d_grad = cuda.to_device(np.zeros(self._P, dtype=self.dtype))
        self._d_scratch = cuda.device_array((self._maxb, self._rb, 4 * H), dtype=self.dtype)
        self._bufs = {}          # name -> flat device buffer, grown on demand
        self._chunk = None       # (capacity rows, buffers) of the backward temporaries
        self._load(arrays)

    # -- device memory bookkeeping ---------------------------------------------------------
    def _buf(self, name, shape, dtype):
        """A device view of ``shape`` on a persistent flat buffer (no allocation per call)."""
        size = int(np.prod(shape))
        flat = self._bufs.get(name)
        if flat is None or flat.size < size or flat.dtype != np.dtype(dtype):
            cap = max(size, 1) if flat is None else max(size, int(flat.size * 1.5))
            flat = self._cuda.device_array(cap, dtype=dtype)
            self._bufs[name] = flat
        return flat[:size].reshape(shape)

    def _upload(self, name, host):
        view = self._buf(name, host.shape, host.dtype)
        view.copy_to_device(np.ascontiguousarray(host))
        return view

    def _grid(self, n_items, threads):
        return max(1, min(_ceil_div(n_items, threads), self._maxb))

    def _chunk_rows(self):
        """Due series per chunk: what fits CHUNK_BYTES, a multiple of GRAD_SEGMENT (so
        the segment boundaries, hence the sums, do not depend on the chunk size)."""
        lay, it = self.layout, np.dtype(self.dtype).itemsize
        H, L, O, S = lay.hidden_size, lay.n_layers, lay.n_outputs, lay.S
        per_row = it * (self.k2 * L * (S + 4) * H + self.k2 * O + 2 * L * H + H
                        + self._P / self._seg) + 8
        rows = int(self._chunk_bytes // per_row) // self._seg * self._seg
        return max(self._seg, rows)

    def _chunk_buffers(self, n_due):
        """Backward temporaries for min(n_due, chunk) rows (kept and grown on demand)."""
        want = min(_ceil_div(n_due, self._seg) * self._seg, self._chunk_rows())
        if self._chunk is None or self._chunk[0] < want:
            lay, cuda, dt = self.layout, self._cuda, self.dtype
            H, L, O, S = lay.hidden_size, lay.n_layers, lay.n_outputs, lay.S
            self._chunk = None   # free the old buffers first
            bufs = {
                "cache": cuda.device_array((want, self.k2, L, (S + 4) * H), dtype=dt),
                "dy": cuda.device_array((want, self.k2, O), dtype=dt),
                "carry": cuda.device_array((want, L, 2, H), dtype=dt),
                "dxb": cuda.device_array((want, H), dtype=dt),
                "tlen": cuda.device_array(want, dtype=np.int64),
                "partial": cuda.device_array((want // self._seg, self._P), dtype=dt),
            }
            self._chunk = (want, bufs)
        return self._chunk

    def _load(self, arrays):
        cuda = self._cuda
        d = {}
        for name in ALL_ARRAYS:
            want = INDEX_DTYPE if name in INT_ARRAYS else self.dtype
            d[name] = cuda.to_device(np.ascontiguousarray(arrays[name], dtype=want))
        self._d = d
        self._count = np.array(arrays["count"], dtype=np.int64, copy=True)   # host mirror
        self._N = int(self._count.shape[0])
        self._refresh_transposed()

    def _refresh_transposed(self):
        self._k.launch("refresh_transposed", self._grid(self._P, self._et), self._et,
                       theta=self._d["theta"], wt=self._d_wt, ptab=self._d_ptab)

    # -- contract ------------------------------------------------------------------------
    def step_calls(self, series, U, Y, offsets):
        O = self.layout.n_outputs
        R = int(series.shape[0])
        out = np.empty((R, O), dtype=self.dtype)
        if R == 0:
            return out
        slots, s0, due, due_lo, due_hi, counts = self._plan(series, offsets)
        d_series = self._upload("series", slots)
        d_U = self._upload("U", U)
        d_Y = self._upload("Y", Y)
        d_yhat = self._buf("yhat", (R, O), self.dtype)
        d_due = self._upload("due", due) if due.size else None
        d = self._d
        for c in range(offsets.shape[0] - 1):
            lo, hi = int(offsets[c]), int(offsets[c + 1])
            if hi > lo:   # SPEC 3 steps 1-2 with the weights before this call's update
                self._step_forward(d_series, int(s0[c]), lo, hi, d_U, d_Y, d_yhat, d["state"], 1)
            dlo, dhi = int(due_lo[c]), int(due_hi[c])
            if dhi > dlo:  # SPEC 3 step 3: one update for this call's due series
                self._update(d_due, dlo, dhi - dlo)
        d_yhat.copy_to_host(out)
        self._count = counts
        return out

    def resize(self, n_series):
        cuda = self._cuda
        n_old = self._N
        fresh = new_series_arrays(self.layout, n_series - n_old, self.k2, self.dtype)
        for name in SERIES_ARRAYS:
            old = self._d[name]
            new = cuda.device_array((n_series,) + tuple(old.shape[1:]), dtype=old.dtype)
            if n_old:
                new[:n_old].copy_to_device(old)
            if n_series > n_old:
                new[n_old:].copy_to_device(fresh[name])
            self._d[name] = new
        self._count = np.concatenate([self._count, fresh["count"]])
        self._N = n_series

    def host_arrays(self):
        return {name: self._d[name].copy_to_host() for name in ALL_ARRAYS}

    def load_arrays(self, arrays):
        self._load(arrays)

    def host_counts(self):
        return self._count

    def forward(self, state, U):
        B = int(U.shape[0])
        O = self.layout.n_outputs
        if B == 0:
            return np.empty((0, O), dtype=self.dtype), np.array(state, dtype=self.dtype)
        d_state = self._cuda.to_device(np.ascontiguousarray(state, dtype=self.dtype))
        d_idx = self._upload("fwd_idx", np.arange(B, dtype=np.int64))
        d_U = self._upload("fwd_U", U)
        d_yhat = self._buf("fwd_yhat", (B, O), self.dtype)
        # append=0: nothing of the model changes; U stands in for the unread targets
        self._step_forward(d_idx, 0, 0, B, d_U, d_U, d_yhat, d_state, 0)
        return d_yhat.copy_to_host(), d_state.copy_to_host()

    def forward_live(self, series, U):
        return self.forward(self.get_states(series), U)[0]

    def get_states(self, series):
        lay = self.layout
        B = int(series.shape[0])
        if B == 0:
            return np.empty(lay.state_shape(0), dtype=self.dtype)
        E = self._state_elems
        d_idx = self._upload("get_idx", np.ascontiguousarray(series, dtype=np.int64))
        d_out = self._buf("get_out", (B, E), self.dtype)
        src = self._d["state"].reshape(self._N, E)
        self._k.launch("gather_rows", self._grid(B * E, self._et), self._et,
                       series=d_idx, src=src, out=d_out)
        return d_out.copy_to_host().reshape(lay.state_shape(B))

    def check_bookkeeping(self):
        """Verify the invariants the launcher relies on, against the device arrays:
        the host mirror of the step counts equals the device counts, and every
        window holds 0..k2 rows with NaN targets past its end.  Raises
        ``RuntimeError`` naming the first slot that breaks one (tests and
        debugging; copies the per-series arrays to the host)."""
        a = self.host_arrays()
        bad = np.flatnonzero(a["count"] != self._count)
        if bad.size:
            n = bad[0]
            raise RuntimeError(f"slot {n}: device step count {a['count'][n]} != host mirror "
                               f"{self._count[n]}")
        bad = np.flatnonzero((a["win_len"] < 0) | (a["win_len"] > self.k2))
        if bad.size:
            raise RuntimeError(f"slot {bad[0]}: window length {a['win_len'][bad[0]]} outside "
                               f"0..k2={self.k2}")
        past = np.arange(self.k2)[None, :] >= a["win_len"][:, None]          # (N, k2)
        bad = np.argwhere(past & ~np.isnan(a["win_y"]).all(axis=2))
        if bad.size:
            raise RuntimeError(f"slot {bad[0][0]}: target row {bad[0][1]} past the window end "
                               f"is not NaN")

    # -- host planning -------------------------------------------------------------------
    def _plan(self, series, offsets):
        """Which series are due in which call, from the host mirror of the counts.

        Returns ``(slots, s0, due, due_lo, due_hi, counts)``: the slot list to
        upload and, per call c, the index ``s0[c]`` of its first row's slot in it;
        the due slots of call c (ascending) as ``due[due_lo[c]:due_hi[c]]``; the
        counts after all calls.  ``run`` (the same slots in every call) is planned in
        O(B log B) instead of O(C B): a slot's due calls repeat every k1 calls.
        """
        k1 = self.k1
        C = offsets.shape[0] - 1
        counts = self._count.copy()
        B = int(offsets[1] - offsets[0]) if C else 0
        same = (C > 1 and B > 0 and bool(np.all(np.diff(offsets) == B))
                and np.array_equal(series.reshape(C, B), np.broadcast_to(series[:B], (C, B))))
        if same:
            S = series[:B]
            # slot n is due in call c iff (count[n] + 1 + c) % k1 == 0, i.e. iff
            # c % k1 == first[n] with first[n] = (-(count[n] + 1)) % k1
            ss = np.sort(S)
            first = (-(counts[ss] + 1)) % k1
            order = np.argsort(first, kind="stable")        # by first due call, slots ascending
            due = ss[order]
            bounds = np.searchsorted(first[order], np.arange(k1 + 1))
            rho = np.arange(C) % k1
            counts[S] += C
            return S, np.zeros(C, dtype=np.int64), due, bounds[rho], bounds[rho + 1], counts
        parts = []
        due_off = np.zeros(C + 1, dtype=np.int64)
        for c in range(C):
            idx = series[offsets[c]:offsets[c + 1]]
            counts[idx] += 1
            d = idx[counts[idx] % k1 == 0]
            if d.size > 1:
                d = np.sort(d)
            parts.append(d)
            due_off[c + 1] = due_off[c] + d.size
        due = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        return (series, offsets[:-1], due.astype(np.int64, copy=False), due_off[:-1],
                due_off[1:], counts)

    # -- launches ------------------------------------------------------------------------
    def _model(self):
        return Model(theta=self._d["theta"], wt=self._d_wt, offs=self._d_offs, head_w=self._hw,
                     head_b=self._hb)

    def _windows(self):
        d = self._d
        return Windows(win_u=d["win_u"], win_y=d["win_y"], win_len=d["win_len"])

    def _step_forward(self, d_series, s0, lo, hi, d_U, d_Y, d_yhat, d_state, append):
        blocks = min(_ceil_div(hi - lo, self._rb), self._maxb)
        call = Call(series=d_series, s0=s0, lo=lo, hi=hi, U=d_U, Y=d_Y, yhat=d_yhat)
        self._k.launch("step_forward", blocks, self._tpb, call=call, state=d_state,
                       model=self._model(), win=self._windows(), count=self._d["count"],
                       scratch=self._d_scratch, rows_per_block=self._rb, append=append)

    def _update(self, d_due, dlo, n_due):
        """SPEC 4 for the due slots ``d_due[dlo:dlo+n_due]`` (ascending)."""
        k, d, et, P = self._k, self._d, self._et, self._P
        gP = self._grid(P, et)
        model, win, M = self._model(), self._windows(), self._d_M
        k.launch("count_targets", self._grid(n_due, et), et,
                 due=Due(slots=d_due, lo=dlo, n=n_due), win=win, k1=self.k1, M=M)
        cap, buf = self._chunk_buffers(n_due)
        chunk = Chunk(cache=buf["cache"], dy=buf["dy"], carry=buf["carry"], dxb=buf["dxb"],
                      tlen=buf["tlen"])
        E_move = self.layout.n_inputs + self.layout.n_outputs + self._state_elems
        for c0 in range(0, n_due, cap):
            nr = min(cap, n_due - c0)
            due = Due(slots=d_due, lo=dlo + c0, n=nr)
            blocks = min(_ceil_div(nr, self._rb), self._maxb)
            k.launch("window_forward", blocks, self._tpb, due=due, entry=d["entry"], win=win,
                     model=model, chunk=chunk, M=M, k1=self.k1, rows_per_block=self._rb)
            k.launch("window_backward", blocks, self._tpb, due=due, entry=d["entry"],
                     model=model, chunk=chunk, M=M, rows_per_block=self._rb)
            n_segs = _ceil_div(nr, self._seg)
            k.launch("grad_partial", self._grid(n_segs * self._n_tiles, et), et, due=due,
                     entry=d["entry"], win_u=d["win_u"], chunk=chunk, ptab=self._d_ptab,
                     n_tiles=self._n_tiles, partial=buf["partial"], M=M, seg=self._seg)
            k.launch("grad_accumulate", gP, et, partial=buf["partial"], n_segs=n_segs,
                     grad=self._d_grad, first=int(c0 == 0), M=M)
            k.launch("window_move", self._grid(nr * E_move, et), et, due=due, entry=d["entry"],
                     win=win, chunk=chunk, k1=self.k1)
        opt = Optim(opt_m=d["opt_m"], opt_v=d["opt_v"], opt_step=d["opt_step"],
                    hyper=self._d_hyper, upd=self._d_upd)
        k.launch("update_prepare", 1, min(et, self._lanes), grad=self._d_grad, opt=opt, M=M)
        k.launch("optimizer_step", gP, et, theta=d["theta"], grad=self._d_grad, opt=opt,
                 wt=self._d_wt, ptab=self._d_ptab, M=M)
