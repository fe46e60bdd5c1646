"""Benchmark of ``OnlineRNN(backend="cuda")`` on a real NVIDIA GPU.

    python bench/cuda.py                 # N in {10k, 100k, 1M} x H in {32, 128}, float32
    python bench/cuda.py --check         # cuda vs reference, float64, 1,000 learning steps
    python bench/cuda.py --sizes 10000 --hidden 32 --steps 32 --repeats 3

What it measures, all in the same process and on the same GPU:

* streamlstm: series-observations per second of ``net.run(U, Y)`` with learning
  (LSTM, I=4, O=1, k1 = k2 = 16, Adam), host arrays in, forecasts out - the
  whole API call, medians over ``--repeats`` blocks of ``--steps`` steps after a
  warm-up block that also compiles the kernels;
* PyTorch CUDA doing the same math (SPEC 3-4 in lockstep, k1 = k2): each step an
  ``nn.LSTM`` forward of all N series + ``nn.Linear`` head, and every k1 steps the
  window re-run from its entry state with autograd (cuDNN), the masked MSE over
  present targets, ``Adam.step()``; also host arrays in, forecasts out.  Run
  ``--torch-check`` (any machine, CPU is fine) to see it agree with streamlstm's
  reference to ~1e-12 in float64;
* the GPU's own ceilings: device-to-device copy bandwidth (numba memcpy), FP32
  FMA peak (a numba FMA-chain kernel) and cuBLAS SGEMM (torch.matmul, TF32 off);
  each configuration is placed on that roofline: model FLOPs and minimum bytes
  per observation are counted analytically (see ``model_cost``), and the report
  gives achieved GFLOP/s, GB/s and the fraction of min(peak FLOP/s, AI x BW).

It refuses to run under ``NUMBA_ENABLE_CUDASIM=1`` or without a GPU: simulator
timings say nothing about speed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# This file is named cuda.py and Python puts its folder first on sys.path, where
# it would shadow the `cuda` package (cuda-bindings) that numba-cuda imports:
# take the folder off, put the repository on.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import streamlstm  # noqa: E402

I, O, L, K = 4, 1, 1, 16          # inputs, outputs, layers, k1 = k2


def refuse(msg):
    print(f"bench/cuda.py: {msg}", file=sys.stderr)
    sys.exit(2)


def require_gpu():
    """numba.cuda on a real GPU, or exit with a one-line reason."""
    from numba.core import config
    if config.ENABLE_CUDASIM:
        refuse("NUMBA_ENABLE_CUDASIM is set: the simulator runs kernels as Python threads and its "
               "timings mean nothing. Unset it and run on a machine with an NVIDIA GPU.")
    from streamlstm.backends.cuda.launcher import gpu_unavailable_reason
    reason = gpu_unavailable_reason()
    if reason is not None:
        refuse(f"this benchmark measures a real NVIDIA GPU and none is usable here ({reason}); "
               f"run it on a machine with a GPU and a CUDA driver.")
    from numba import cuda
    return cuda


def gpu_description(cuda):
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    free, total = cuda.current_context().get_memory_info()
    return {"name": name, "cc": "%d.%d" % dev.compute_capability,
            "sms": dev.MULTIPROCESSOR_COUNT, "mem_gib": total / 2**30, "free_gib": free / 2**30}


# -- the GPU's ceilings -------------------------------------------------------------------
def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def copy_bandwidth(cuda, nbytes=1 << 30, repeats=5):
    """Device-to-device memcpy: bytes read + bytes written per second."""
    src = cuda.device_array(nbytes // 4, dtype=np.float32)
    dst = cuda.device_array(nbytes // 4, dtype=np.float32)
    dst.copy_to_device(src)
    cuda.synchronize()

    def once():
        dst.copy_to_device(src)
        cuda.synchronize()
    return 2 * nbytes / median_time(once, repeats)


def fma_peak(cuda, repeats=5):
    """FP32 FLOP/s of independent FMA chains in registers (2 FLOPs per FMA)."""
    from numba import float32

    ITERS = 4096

    @cuda.jit("void(float32[::1], float32)")
    def chains(out, s):
        i = cuda.grid(1)
        a0 = float32(i) * s
        a1 = a0 + float32(1.0)
        a2 = a0 + float32(2.0)
        a3 = a0 + float32(3.0)
        b = float32(0.999)
        c = float32(0.001)
        for _ in range(ITERS):
            a0 = a0 * b + c
            a1 = a1 * b + c
            a2 = a2 * b + c
            a3 = a3 * b + c
        out[i] = a0 + a1 + a2 + a3

    dev = cuda.get_current_device()
    blocks, threads = dev.MULTIPROCESSOR_COUNT * 32, 256
    out = cuda.device_array(blocks * threads, dtype=np.float32)
    chains[blocks, threads](out, np.float32(1e-3))
    cuda.synchronize()

    def once():
        chains[blocks, threads](out, np.float32(1e-3))
        cuda.synchronize()
    return 2 * 4 * ITERS * blocks * threads / median_time(once, repeats)


def sgemm_peak(torch, n=8192, repeats=5):
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    a @ b
    torch.cuda.synchronize()

    def once():
        a @ b
        torch.cuda.synchronize()
    return 2 * n ** 3 / median_time(once, repeats)


# -- the model's cost, counted analytically ------------------------------------------------
def model_cost(H):
    """(FLOPs, minimum device bytes) per series-observation for the bench model
    (LSTM, L=1, float32, k1 = k2 = K).

    FLOPs: the step's forward 2*4H*(I+H) (gate matmuls) + 2*H*O (head); per update
    (every K steps) the window re-run (K forwards), the backward through it
    (dx/dh products: 2*4H*(I+H) per step, same as the forward) and the weight
    gradient (another 2*4H*(I+H) per step): 3 forward-equivalents per step.
    Bytes: per step, the series' state read and written (2 x 2H floats), u and y
    in, the window row written, yhat out; per update, the window and the entry
    state read once and the entry written (activations of the re-run are
    temporaries a fused kernel could keep on chip, so they are not counted).
    """
    fwd = 2 * 4 * H * (I + H) + 2 * H * O
    flops = fwd + 3 * fwd                   # K re-run + backward steps per K steps
    floats = 2 * 2 * H + (I + O) + (I + O) + O + ((I + O) * K + 2 * 2 * H) / K
    return flops, 4 * floats


# -- workloads ------------------------------------------------------------------------------
def make_data(T, N, seed):
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(T, N, I)).astype(np.float32)
    Y = np.sin(U.sum(axis=2, keepdims=True)).astype(np.float32)
    Y[rng.random(Y.shape) < 0.05] = np.nan
    return U, Y


def bench_streamlstm(N, H, steps, repeats):
    net = streamlstm.OnlineRNN(n_inputs=I, hidden_size=H, n_outputs=O, n_series=N, cell="lstm",
                               n_layers=L, k1=K, k2=K, optimizer=streamlstm.Adam(lr=1e-3),
                               dtype="float32", backend="cuda", seed=0)
    U, Y = make_data(steps, N, seed=1)
    t = time.perf_counter()
    net.run(U, Y)                           # warm-up: compiles the kernels once per process
    warm = time.perf_counter() - t
    per = median_time(lambda: net.run(U, Y), repeats)
    assert int(net.arrays()["opt_step"][0]) >= steps // K
    return N * steps / per, warm, net


class TorchOnline:
    """SPEC 3-4 for N series in lockstep with k1 = k2 = K, in plain PyTorch."""

    def __init__(self, torch, net, N, device, dtype):
        self.torch, self.device = torch, device
        H = net.hidden_size
        self.lstm = torch.nn.LSTM(net.n_inputs, H, net.n_layers).to(device=device, dtype=dtype)
        self.head = torch.nn.Linear(H, net.n_outputs).to(device=device, dtype=dtype)
        sd = net.state_dict()
        with torch.no_grad():
            for name, p in self.lstm.named_parameters():
                p.copy_(torch.from_numpy(sd[name]))
            self.head.weight.copy_(torch.from_numpy(sd["head.weight"]))
            self.head.bias.copy_(torch.from_numpy(sd["head.bias"]))
        self.params = list(self.lstm.parameters()) + list(self.head.parameters())
        oc = net.optimizer.config()
        self.opt = torch.optim.Adam(self.params, lr=oc["lr"], betas=tuple(oc["betas"]),
                                    eps=oc["eps"], weight_decay=oc["weight_decay"])
        shape = (net.n_layers, N, H)
        z = dict(device=device, dtype=dtype)
        self.h, self.c = torch.zeros(shape, **z), torch.zeros(shape, **z)
        self.eh, self.ec = self.h.clone(), self.c.clone()     # window-entry state
        self.K = net.k1
        self.win_u = torch.zeros((self.K, N, net.n_inputs), **z)
        self.win_y = torch.zeros((self.K, N, net.n_outputs), **z)
        self.w = 0

    def run(self, U, Y):
        torch = self.torch
        U = torch.from_numpy(U).to(self.device)
        Y = torch.from_numpy(Y).to(self.device)
        out = torch.empty(Y.shape, dtype=U.dtype, device=self.device)
        for t in range(U.shape[0]):
            with torch.no_grad():               # SPEC 3: forecast, then join the window
                o, (self.h, self.c) = self.lstm(U[t:t + 1], (self.h, self.c))
                out[t] = self.head(o[0])
            self.win_u[self.w] = U[t]
            self.win_y[self.w] = Y[t]
            self.w += 1
            if self.w == self.K:                # SPEC 4 with k1 = k2: the whole window
                o, (hT, cT) = self.lstm(self.win_u, (self.eh, self.ec))
                yhat = self.head(o)
                m = ~torch.isnan(self.win_y)
                M = m.sum()
                diff = torch.where(m, yhat - torch.nan_to_num(self.win_y), torch.zeros_like(yhat))
                loss = (diff * diff).sum() / M
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if M.item() > 0:                # SPEC 4: M = 0 -> no update
                    self.opt.step()
                self.eh, self.ec = hT.detach(), cT.detach()   # = the live state (k1 = k2)
                self.w = 0
        return out.cpu().numpy()


def bench_torch(torch, net, N, steps, repeats):
    tw = TorchOnline(torch, net, N, "cuda", torch.float32)
    U, Y = make_data(steps, N, seed=1)
    tw.run(U, Y)
    torch.cuda.synchronize()
    per = median_time(lambda: tw.run(U, Y), repeats)
    return N * steps / per


def load_torch_cuda():
    try:
        import torch
    except ImportError:
        return None, "torch is not installed (pip install torch==2.13.0 with CUDA)"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} has no CUDA here (a +cpu build?)"
    return torch, None


# -- modes ----------------------------------------------------------------------------------
def run_bench(args):
    cuda = require_gpu()
    g = gpu_description(cuda)
    print(f"GPU: {g['name']} (compute capability {g['cc']}, {g['sms']} SMs, "
          f"{g['mem_gib']:.0f} GiB, {g['free_gib']:.0f} GiB free)")
    torch, why = load_torch_cuda()
    bw = copy_bandwidth(cuda)
    fma = fma_peak(cuda)
    print(f"device copy bandwidth {bw / 1e9:.0f} GB/s; FP32 FMA peak {fma / 1e12:.1f} TFLOP/s", end="")
    peak = fma
    if torch is not None:
        sg = sgemm_peak(torch)
        peak = max(fma, sg)
        print(f"; cuBLAS SGEMM {sg / 1e12:.1f} TFLOP/s (TF32 off)")
    else:
        print(f"\nPyTorch comparison skipped: {why}")
    print(f"model: LSTM, I={I}, O={O}, L={L}, k1=k2={K}, Adam, float32; "
          f"{args.steps} steps per timed block, median of {args.repeats}\n")
    cols = ("N", "H", "obs/s", "torch obs/s", "ratio", "GFLOP/s", "GB/s", "roofline", "warm-up s")
    print("{:>9} {:>4} {:>12} {:>12} {:>6} {:>8} {:>7} {:>8} {:>9}".format(*cols))
    for H in args.hidden:
        for N in args.sizes:
            free0 = cuda.current_context().get_memory_info()[0]
            try:
                ops, warm, net = bench_streamlstm(N, H, args.steps, args.repeats)
            except Exception as exc:   # e.g. out of device memory
                print(f"{N:>9} {H:>4}  streamlstm failed: {type(exc).__name__}: {exc}")
                continue
            used = (free0 - cuda.current_context().get_memory_info()[0]) / 2**30
            t_ops = float("nan")
            if torch is not None:
                try:
                    t_ops = bench_torch(torch, net, N, args.steps, args.repeats)
                except Exception as exc:   # torch.cuda.OutOfMemoryError at 1M x 128
                    print(f"          (torch failed at N={N}, H={H}: {type(exc).__name__})")
                torch.cuda.empty_cache()
            flops, nbytes = model_cost(H)
            roof = min(peak, flops / nbytes * bw)
            print(f"{N:>9} {H:>4} {ops:>12.4g} {t_ops:>12.4g} {ops / t_ops:>6.2f} "
                  f"{ops * flops / 1e9:>8.0f} {ops * nbytes / 1e9:>7.1f} "
                  f"{ops * flops / roof:>8.1%} {warm:>9.1f}   (device memory +{used:.2f} GiB)")
            del net
            cuda.current_context().deallocations.clear()   # free it before the next size


def run_check(args):
    """SPEC 6: cuda matches reference within 1e-9 (float64) after 1,000 learning steps."""
    require_gpu()
    worst = 0.0
    for cell, L_ in (("lstm", 2), ("gru", 1)):
        kw = dict(n_inputs=3, hidden_size=16, n_outputs=2, n_series=6, cell=cell, n_layers=L_,
                  k1=4, k2=8, optimizer=streamlstm.Adam(lr=1e-3), clip_norm=1.0,
                  dtype="float64", seed=7)
        ref = streamlstm.OnlineRNN(backend="reference", **kw)
        gpu = streamlstm.OnlineRNN(backend="cuda", **kw)
        rng = np.random.default_rng(3)
        T = args.check_steps
        U = rng.normal(size=(T, 6, 3))
        Y = np.sin(np.cumsum(U[..., :2], axis=0) * 0.3) + 0.05 * rng.normal(size=(T, 6, 2))
        Y[rng.random(Y.shape) < 0.1] = np.nan
        yr, yg = ref.run(U, Y), gpu.run(U, Y)
        d = {"yhat": float(np.max(np.abs(yr - yg)))}
        A, B = ref.arrays(), gpu.arrays()
        for k in A:
            d[k] = float(np.max(np.abs(np.nan_to_num(A[k].astype(float)) -
                                       np.nan_to_num(B[k].astype(float))), initial=0.0))
        w = max(d, key=d.get)
        worst = max(worst, d[w])
        print(f"{cell} L={L_}: {T} steps, {int(B['opt_step'][0])} updates; largest difference "
              f"{d[w]:.3g} in {w!r}")
    ok = worst <= 1e-9
    print("PASS" if ok else "FAIL", f"(cuda vs reference, float64, tolerance 1e-9)")
    sys.exit(0 if ok else 1)


def run_torch_check(args):
    """The PyTorch baseline computes SPEC 3-4: compare it (float64, CPU or GPU) to
    streamlstm's reference backend."""
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    N, H, T = 5, 8, 3 * K
    net = streamlstm.OnlineRNN(n_inputs=I, hidden_size=H, n_outputs=O, n_series=N, k1=K, k2=K,
                               optimizer=streamlstm.Adam(lr=1e-2), dtype="float64",
                               backend="reference", seed=0)
    tw = TorchOnline(torch, net, N, device, torch.float64)
    U, Y = make_data(T, N, seed=2)
    U, Y = U.astype(np.float64), Y.astype(np.float64)
    d = float(np.max(np.abs(net.run(U, Y) - tw.run(U, Y))))
    print(f"PyTorch baseline ({device}) vs streamlstm reference, {T} steps, "
          f"{int(net.arrays()['opt_step'][0])} updates: max |yhat difference| = {d:.3g}")
    sys.exit(0 if d <= 1e-9 else 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                   help="numbers of series N")
    p.add_argument("--hidden", type=int, nargs="+", default=[32, 128], help="hidden sizes H")
    p.add_argument("--steps", type=int, default=2 * K, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks (median reported)")
    p.add_argument("--check", action="store_true",
                   help="cuda vs reference (float64, 1e-9) instead of timing")
    p.add_argument("--check-steps", type=int, default=1000, help="learning steps of --check")
    p.add_argument("--torch-check", action="store_true",
                   help="check that the PyTorch baseline computes the same math (runs on CPU too)")
    args = p.parse_args(argv)
    if args.torch_check:
        run_torch_check(args)
    elif args.check:
        run_check(args)
    else:
        run_bench(args)


if __name__ == "__main__":
    main()
