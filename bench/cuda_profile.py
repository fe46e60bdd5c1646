"""Where the GPU time of ``OnlineRNN(backend="cuda").run`` goes, kernel by kernel.

    python bench/cuda_profile.py                     # N=1M,H=32 and N=100k,H=128
    python bench/cuda_profile.py --cases 1000000x32

PyTorch's profiler (CUPTI) records every kernel on the device, Numba's
included: one timed ``run`` of ``--steps`` steps after a warm-up that compiles,
same model as ``bench/cuda.py`` (LSTM, I=4, O=1, k1 = k2 = 16, Adam, float32).
Needs a real GPU and a CUDA build of torch.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]   # see bench/cuda.py
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

import streamlstm  # noqa: E402


def bench_cuda():
    """bench/cuda.py as a module (not importable as ``cuda``: that name is cuda-bindings')."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_cuda", HERE / "cuda.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def profile_case(torch, N, H, steps):
    bench = bench_cuda()
    net = streamlstm.OnlineRNN(n_inputs=bench.I, hidden_size=H, n_outputs=bench.O, n_series=N,
                               cell="lstm", n_layers=bench.L, k1=bench.K, k2=bench.K,
                               optimizer=streamlstm.Adam(lr=1e-3), dtype="float32",
                               backend="cuda", seed=0)
    U, Y = bench.make_data(steps, N, seed=1)
    net.run(U, Y)
    torch.cuda.synchronize()
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t = time.perf_counter()
        net.run(U, Y)
        torch.cuda.synchronize()
        wall = time.perf_counter() - t
    ev = [e for e in prof.key_averages() if e.device_type.name == "CUDA" or
          getattr(e, "self_device_time_total", 0) > 0]
    gpu = sum(getattr(e, "self_device_time_total", 0) for e in prof.key_averages()) / 1e6
    print(f"\nN={N} H={H}: {steps} steps, wall {wall * 1e3:.1f} ms "
          f"({N * steps / wall:.3g} obs/s), GPU busy {gpu * 1e3:.1f} ms")
    rows = sorted(prof.key_averages(), key=lambda e: -getattr(e, "self_device_time_total", 0))
    for e in rows[:14]:
        d = getattr(e, "self_device_time_total", 0)
        if d <= 0:
            continue
        name = e.key if len(e.key) < 90 else e.key[:87] + "..."
        print(f"  {d / 1e3:9.2f} ms  {e.count:6d} calls  {name}")


def sweep(N, H, steps):
    """obs/s of ``run`` for launch tunables around the defaults (backends/cuda/config.py)."""
    from streamlstm.backends.cuda import config as cfg
    bench = bench_cuda()
    base = {k: getattr(cfg, k) for k in ("THREADS_PER_BLOCK", "ROWS_PER_THREAD", "MAX_BLOCKS")}
    print(f"\nlaunch tunables at N={N} H={H} (defaults {base}):")
    for tpb, rpt, mb in ((256, 4, 4096), (256, 4, 65536), (128, 4, 65536), (512, 4, 65536),
                         (256, 1, 65536), (256, 2, 65536), (256, 8, 65536)):
        cfg.THREADS_PER_BLOCK, cfg.ROWS_PER_THREAD, cfg.MAX_BLOCKS = tpb, rpt, mb
        try:
            ops, warm, net = bench.bench_streamlstm(N, H, steps, 3)
            print(f"  THREADS_PER_BLOCK={tpb:4d} ROWS_PER_THREAD={rpt} MAX_BLOCKS={mb:6d}: "
                  f"{ops:.3g} obs/s (warm-up {warm:.1f} s)")
        except Exception as exc:
            print(f"  {tpb} {rpt} {mb}: failed: {type(exc).__name__}: {exc}")
    for k, v in base.items():
        setattr(cfg, k, v)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=["1000000x32", "100000x128"])
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--sweep", nargs="*", default=[], help="NxH cases to sweep launch tunables")
    a = p.parse_args(argv)
    import torch
    for c in a.cases:
        N, H = (int(v) for v in c.split("x"))
        profile_case(torch, N, H, a.steps)
    for c in a.sweep:
        N, H = (int(v) for v in c.split("x"))
        sweep(N, H, a.steps)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
