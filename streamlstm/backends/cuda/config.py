"""Tunables of the CUDA backend, in one place (stumpy's ``config.py`` pattern).

The launch tunables below change speed only, never a single bit of a result:
every output element is computed by one thread with a fixed sequential loop,
so results are the same for any block size, grid size or chunk size (the CUDA
tests patch them small so that tiny inputs still span several blocks, several
grid-stride rounds and several chunks, and check exactly that).

The two *numerics* constants at the end fix the order of floating-point sums
(docs/spec.md section 4 gradient over due series; clip norm).  Changing them changes the
last bits of results, so they are constants of the format, not knobs.

Values are read when a backend is constructed (launch tunables) or when the
kernels are built (``ROWS_PER_THREAD``, ``NORM_LANES``: one compiled set per
value); patch them before building a model.
"""

# -- launch tunables (speed only) ---------------------------------------------------
#: Threads per block of the row-tile kernels (one step forward; window re-run and
#: backward).  Their threads stride over the (series, hidden unit) pairs of the
#: block's tile of series (see ROWS_PER_THREAD).
THREADS_PER_BLOCK = 256

#: Series per thread in the matrix-vector products of the row-tile kernels: each
#: weight loaded serves this many series (register blocking).  A block then takes
#: ``max(1, THREADS_PER_BLOCK // H) * ROWS_PER_THREAD`` series.  Compile-time.
ROWS_PER_THREAD = 4

#: Threads per block of the kernels over parameters or flat element ranges
#: (gradient partials and reduction, optimizer, bookkeeping).
ELEMENTWISE_THREADS = 256

#: Upper bound on blocks per launch; kernels are grid-stride loops, so a bigger
#: problem just takes more rounds.  Also bounds the per-block scratch of the
#: step kernel (blocks x series per block x 4H values).
MAX_BLOCKS = 4096

#: Device memory budget (bytes) for the backward temporaries of one chunk of due
#: series (activations of the re-run window, output gradients, carries and the
#: partial gradients).  Due series are processed in chunks that fit, so one
#: million series at H=32 never need one million windows of activations at once.
CHUNK_BYTES = 1 << 30

# -- numerics constants (fix the order of sums; part of what "reproducible" means) --
#: Due series per partial gradient: the gradient of one update is the sum over
#: consecutive segments of GRAD_SEGMENT due series (ascending slot order) of each
#: segment's sequentially accumulated gradient, the segments added in order.
GRAD_SEGMENT = 32

#: Lanes of the clip-norm reduction: lane k sums the squares of elements
#: k, k + NORM_LANES, ... in float64; the lanes are then added in order.
NORM_LANES = 256
