"""Core benchmarks of the Numba CPU backend (``backend="cpu"``).

    python bench/core.py              # all three parts (a few minutes)
    python bench/core.py --part 1     # one series: us per observation vs PyTorch
    python bench/core.py --part 2     # 10,000 series: throughput vs PyTorch and the sgemm roofline
    python bench/core.py --part 3     # memory per series; 1,000,000 series stepped with learning
    python bench/core.py --quick      # smaller sizes, fewer repeats (a smoke test)

Every number is the median of repeats, and every ratio compares two things
timed in the same run, round-robin (so that load from other processes hits
both alike); in part 2 each contender runs in its own process (the OpenMP
runtimes of Numba and PyTorch spin against each other in one process).  The model is always SPEC's LSTM with I = O = 1, H = 32,
k1 = k2 = 16 and Adam(lr=1e-3); a step with learning means: forecast, append
to the window, and every k1 steps the truncated-BPTT update (re-run the window
from its entry state, loss on the last k1 steps, Adam).  PyTorch runs the same
algorithm hand-written with ``nn.LSTMCell`` + ``nn.Linear`` and ``torch.optim.Adam``.

FLOPs are counted as multiply-adds x 2 of the matrix products only (gates,
head and their backward), per series-observation:
  F  = 2 G H (I + H) + 2 O H            one forward step
  model FLOPs    = 3 F                  forward + backward (dW, dh: 2 F)
  executed FLOPs = (3 + r) F            + the window re-runs SPEC 4 prescribes,
                                        r = re-run rows per stepped row (0 when
                                        run() fuses whole lockstep windows)
(elementwise gate math is not counted).  The roofline is float32 sgemm
(numpy, 1024 x 1024) at the same thread count, timed in the same run.
Part 2 also times the cpu backend stepped one call per time step (time-major,
re-running each window at its update) next to ``run`` (series-major windows).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numba  # noqa: E402

import streamlstm  # noqa: E402

I, H, O, K1, K2, LR = 1, 32, 1, 16, 16, 1e-3


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median_time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def series_data(T, N, dtype, seed=0):
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=(1, N, 1))
    t = np.arange(T + 1, dtype=np.float64)[:, None, None]
    x = (np.sin(0.1 * t + phase) + 0.05 * rng.normal(size=(T + 1, N, 1))).astype(dtype)
    return x[:-1], x[1:]                          # predict the next value


def net(N, dtype):
    return streamlstm.OnlineRNN(I, H, O, n_series=N, cell="lstm", k1=K1, k2=K2,
                                optimizer=streamlstm.Adam(lr=LR), dtype=dtype, backend="cpu")


def forward_flops():
    return 2 * 4 * H * (I + H) + 2 * O * H


# ---------------------------------------------------------------------------------
# PyTorch: the same TBPTT, hand-written
class TorchTBPTT:
    def __init__(self, N, dtype):
        import torch
        self.torch = torch
        torch.manual_seed(0)
        self.cell = torch.nn.LSTMCell(I, H, dtype=dtype)
        self.head = torch.nn.Linear(H, O, dtype=dtype)
        self.opt = torch.optim.Adam(list(self.cell.parameters()) + list(self.head.parameters()),
                                    lr=LR)
        self.h = torch.zeros(N, H, dtype=dtype)
        self.c = torch.zeros(N, H, dtype=dtype)
        self.entry = (self.h, self.c)
        self.win = []
        self.count = 0

    def steps(self, U, Y):
        """U, Y torch tensors (T, N, I/O): T steps with learning."""
        torch = self.torch
        for t in range(U.shape[0]):
            with torch.no_grad():                                  # the live forecast
                self.h, self.c = self.cell(U[t], (self.h, self.c))
                self.head(self.h)
            self.win.append((U[t], Y[t]))
            self.count += 1
            if self.count % K1 == 0:                               # re-run from the entry state
                hh, cc = self.entry
                preds = []
                for u, _ in self.win:
                    hh, cc = self.cell(u, (hh, cc))
                    preds.append(self.head(hh))
                pred = torch.stack(preds[-K1:])
                tgt = torch.stack([y for _, y in self.win[-K1:]])
                loss = ((pred - tgt) ** 2).mean()
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                self.entry = (hh.detach(), cc.detach())            # k1 = k2: the window empties
                self.win = []


# ---------------------------------------------------------------------------------
def interleaved_medians(fns, repeats):
    """Time each of ``fns`` ``repeats`` times, round-robin (so that load from
    other processes hits every contender alike); median seconds of each."""
    ts = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            ts[i].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in ts]


def part1(quick):
    import torch
    torch.set_num_threads(1)
    reps = 3 if quick else 7
    T_run, T_step, T_torch = (1024, 512, 128) if quick else (8192, 2048, 512)
    U, Y = series_data(T_run, 1, np.float64)
    m = net(1, "float64")
    m.run(U[:64], Y[:64])                                          # load/compile, warm up

    def per_call():
        for t in range(T_step):
            m.step(U[t], Y[t])

    tm = TorchTBPTT(1, torch.float64)
    Ut, Yt = torch.from_numpy(U[:T_torch]), torch.from_numpy(Y[:T_torch])
    tm.steps(Ut[:32], Yt[:32])
    t_run, t_step, t_torch = interleaved_medians(
        [lambda: m.run(U, Y), per_call, lambda: tm.steps(Ut, Yt)], reps)
    t_run, t_step, t_torch = t_run / T_run, t_step / T_step, t_torch / T_torch
    return {"cpu_run_us": t_run * 1e6, "cpu_step_us": t_step * 1e6, "torch_us": t_torch * 1e6,
            "speedup_run": t_torch / t_run, "speedup_step": t_torch / t_step}


def sgemm_gflops(threads, reps):
    """float32 matmul GFLOP/s with the BLAS limited to ``threads`` threads."""
    from threadpoolctl import threadpool_limits
    n = 1024
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b
        t = median_time(lambda: a @ b, reps)
    return 2 * n ** 3 / t / 1e9


_P2_CHILD = r"""
import json, sys, time, numpy as np
sys.path.insert(0, sys.argv[1])
what, threads, N, T = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
sys.path.insert(0, sys.argv[1] + "/bench")
import core
U, Y = core.series_data(T, N, np.float32)
if what in ("cpu", "cpu_step"):
    import numba
    numba.set_num_threads(threads)
    m = core.net(N, "float32")
    m.run(U[:core.K1], Y[:core.K1])                 # warm up (and one update)
    before = m._impl.stats.copy()
    t0 = time.perf_counter()
    if what == "cpu":
        m.run(U, Y)                                 # whole windows: fused, no re-run
    else:
        for t in range(T):                          # one call per time step: re-run at updates
            m.step(U[t], Y[t])
    dt = time.perf_counter() - t0
    st = m._impl.stats - before
    rerun = float(st[1] / st[0])                    # re-run rows per stepped row
elif what == "torch":
    import torch
    torch.set_num_threads(threads)
    tm = core.TorchTBPTT(N, torch.float32)
    Ut, Yt = torch.from_numpy(U), torch.from_numpy(Y)
    tm.steps(Ut[:core.K1], Yt[:core.K1])
    t0 = time.perf_counter(); tm.steps(Ut, Yt); dt = time.perf_counter() - t0
    rerun = None
else:
    dt = 1.0 / core.sgemm_gflops(threads, 5)          # seconds per GFLOP
    rerun = None
print(json.dumps({"t": dt, "rerun": rerun}))
"""


def part2_child(what, threads, N, T):
    """One contender of part 2 in its own process: ``what`` in cpu, cpu_step, torch,
    sgemm -> {"t": seconds, "rerun": re-run rows per row (cpu) or None}."""
    res = subprocess.run([sys.executable, "-c", _P2_CHILD, ROOT, what, str(threads), str(N), str(T)],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def part2(quick):
    """Each contender runs in its own process (OpenMP runtimes of numba and
    PyTorch in one process spin against each other), round-robin over repeats."""
    N = 2000 if quick else 10000
    T = 32
    reps = 2 if quick else 3
    out = {"N": N, "T": T, "threads": {}}
    F = forward_flops()
    for threads in (1, 2):
        if threads > numba.config.NUMBA_NUM_THREADS:
            continue
        ts = {"cpu": [], "cpu_step": [], "torch": [], "sgemm": []}
        rerun = 0.0
        for _ in range(reps):
            for what in ts:
                r = part2_child(what, threads, N, T)
                ts[what].append(r["t"])
                if what == "cpu":
                    rerun = r["rerun"]
        t_cpu, t_torch = float(np.median(ts["cpu"])), float(np.median(ts["torch"]))
        peak = 1.0 / float(np.median(ts["sgemm"]))
        rate = N * T / t_cpu
        executed = (3 + rerun) * F                    # + the rows updates re-ran
        out["threads"][threads] = {
            "cpu_obs_per_s": rate, "torch_obs_per_s": N * T / t_torch,
            "cpu_step_obs_per_s": N * T / float(np.median(ts["cpu_step"])),
            "speedup": t_torch / t_cpu, "sgemm_gflops": peak, "rerun_rows_per_row": rerun,
            "model_gflops": 3 * F * rate / 1e9, "executed_gflops": executed * rate / 1e9,
            "model_frac": 3 * F * rate / 1e9 / peak, "executed_frac": executed * rate / 1e9 / peak}
        log(f"part 2: {threads} thread(s) done")
    return out


_MEM_CHILD = r"""
import json, resource, sys, time, numpy as np
sys.path.insert(0, sys.argv[1])
import streamlstm
N, steps = int(sys.argv[2]), int(sys.argv[3])
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
small = streamlstm.OnlineRNN(1, 32, 1, n_series=2, k1=16, k2=16, dtype="float32", backend="cpu")
small.run(np.zeros((16, 2, 1), np.float32), np.ones((16, 2, 1), np.float32))   # load kernels
base = rss()
t0 = time.perf_counter()
net = streamlstm.OnlineRNN(1, 32, 1, n_series=N, k1=16, k2=16, dtype="float32", backend="cpu")
t_make = time.perf_counter() - t0
rng = np.random.default_rng(0)
t0 = time.perf_counter()
for t in range(steps):
    u = np.sin(0.1 * t + np.arange(N, dtype=np.float32)[:, None] * 0.01).astype(np.float32)
    y = np.cos(0.1 * t + np.arange(N, dtype=np.float32)[:, None] * 0.01).astype(np.float32)
    net.step(u, y)
    del u, y
t_step = time.perf_counter() - t0
a = net.arrays()
spec = sum(a[k].nbytes for k in ("state", "entry", "win_u", "win_y", "win_len", "count"))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"N": N, "rss_bytes": rss() - base, "peak_rss_bytes": peak, "spec_bytes": int(spec),
                  "updates": int(a["opt_step"][0]), "t_make_s": t_make, "t_steps_s": t_step,
                  "steps": steps}))
"""


def _mem_child(N, steps):
    res = subprocess.run([sys.executable, "-c", _MEM_CHILD, ROOT, str(N), str(steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def part3(quick):
    N_bytes = 50_000 if quick else 200_000
    N_big = 200_000 if quick else 1_000_000
    minimum = (2 * 1 * 2 * H + K2 * (I + O)) * 4   # state + entry (L*S*H each) + k2 rows of (u, y)
    m = _mem_child(N_bytes, K2)
    log("part 3: bytes per series done")
    big = _mem_child(N_big, K2)
    log("part 3: large model done")
    return {"minimum_bytes": minimum, "measured_bytes": m["rss_bytes"] / m["N"],
            "spec_array_bytes": m["spec_bytes"] / m["N"], "ratio": m["rss_bytes"] / m["N"] / minimum,
            "big": big}


# ---------------------------------------------------------------------------------
def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    return (f"{cpu}, {os.cpu_count()} cores; numba {numba.__version__} with "
            f"{numba.config.NUMBA_NUM_THREADS} threads (layer {numba.config.THREADING_LAYER}); "
            f"numpy {np.__version__}, torch {torch.__version__}, Python {platform.python_version()}")


def report(res, quick):
    lines = ["```", f"python bench/core.py{' --quick' if quick else ''}", machine(), ""]
    if "1" in res:
        r = res["1"]
        lines += ["1. one series, LSTM H=32, I=O=1, k1=k2=16, Adam, float64",
                  "   (us per observation, step with learning)",
                  f"   cpu run(U, Y)          {r['cpu_run_us']:9.2f} us  "
                  f"{r['speedup_run']:6.1f}x faster than PyTorch",
                  f"   cpu step() per call    {r['cpu_step_us']:9.2f} us  {r['speedup_step']:6.1f}x",
                  f"   PyTorch LSTMCell loop  {r['torch_us']:9.2f} us", ""]
    if "2" in res:
        r = res["2"]
        lines += [f"2. {r['N']:,} series stepped together, same model, float32, T={r['T']}"]
        for th, x in r["threads"].items():
            lines += [f"   {th} thread(s): cpu run {x['cpu_obs_per_s']:,.0f} series-obs/s, "
                      f"PyTorch {x['torch_obs_per_s']:,.0f}/s -> {x['speedup']:.1f}x "
                      f"(cpu step() per time step: {x['cpu_step_obs_per_s']:,.0f}/s)",
                      f"      sgemm {x['sgemm_gflops']:.1f} GFLOP/s; cpu {x['model_gflops']:.1f} model / "
                      f"{x['executed_gflops']:.1f} executed GFLOP/s = {100 * x['model_frac']:.0f}% / "
                      f"{100 * x['executed_frac']:.0f}% of sgemm"]
        lines += [""]
    if "3" in res:
        r = res["3"]
        b = r["big"]
        lines += ["3. memory, LSTM H=32 float32",
                  f"   bytes per series: measured {r['measured_bytes']:.0f} B (RSS growth after k2 "
                  f"steps with learning), SPEC arrays {r['spec_array_bytes']:.0f} B,",
                  f"   minimum {r['minimum_bytes']} B -> {r['ratio']:.2f}x",
                  f"   {b['N']:,} series: created in {b['t_make_s']:.1f} s, {b['steps']} steps with "
                  f"{b['updates']} update in {b['t_steps_s']:.1f} s, "
                  f"peak RSS {b['peak_rss_bytes'] / 2**30:.2f} GiB", ""]
    lines += ["```"]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["1", "2", "3", "all"], default="all")
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    ap.add_argument("--json", action="store_true", help="also print the raw numbers as JSON")
    args = ap.parse_args(argv)
    parts = ["1", "2", "3"] if args.part == "all" else [args.part]
    res = {}
    for p in parts:
        log(f"part {p} ...")
        res[p] = {"1": part1, "2": part2, "3": part3}[p](args.quick)
    print(report(res, args.quick))
    if args.json:
        print(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
