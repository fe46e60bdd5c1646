"""The Numba CPU backend: launcher (``CPUBackend``), kernels and SIMD helpers."""
