"""The Numba CUDA backend: launcher (``CUDABackend``), launch configuration and kernels."""
