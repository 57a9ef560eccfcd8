"""One array module for the whole framework: ``xp`` is NumPy or CuPy.

The choice is made once, at import, from the environment variable
``MINIFER_DEVICE`` (``cpu``, the default, or ``gpu``), or later with
:func:`use_device`. Layers never import numpy or cupy themselves for array
work; they call ``backend.xp`` so the same code runs on both::

    from minifer import backend
    backend.use_device("gpu")      # raises a clear error without CuPy
    x = backend.to_device(host_array)
    y = backend.to_host(x)         # always a NumPy array

Importing minifer never imports CuPy unless the GPU is asked for, and minifer never
changes its host's environment (``os.environ``), at import or later. On the CPU its kernels
run on its own worker threads, started on the first call and sized to the CPUs the process
may use (:func:`map_chunks`); OpenBLAS runs on one thread only while they do, and gets its
thread count back afterwards. Nothing needs setting up for speed.
"""
import os
import sys
import threading

import numpy as np

xp = np            # the active array module
DEVICE = "cpu"     # "cpu" or "gpu"
DTYPE = np.float32  # the framework's compute dtype


class DeviceError(RuntimeError):
    """The requested device is not available."""


def use_device(name):
    """Switch the array module: ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy)."""
    global xp, DEVICE
    name = name.lower()
    if name == "cpu":
        xp, DEVICE = np, "cpu"
    elif name in ("gpu", "cuda"):
        try:
            import cupy
            cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # ImportError, or CUDA errors without a GPU
            raise DeviceError(f"GPU requested but CuPy/CUDA is not usable: {e}") from None
        xp, DEVICE = cupy, "gpu"
    else:
        raise ValueError(f"unknown device {name!r}; use 'cpu' or 'gpu'")
    return xp


def get_array_module(a):
    """NumPy or CuPy, whichever owns array ``a``."""
    return np if isinstance(a, np.ndarray) or DEVICE == "cpu" else xp.get_array_module(a)


def to_device(a, dtype=None):
    """Host array -> array on the active device (a no-op on the CPU)."""
    a = xp.asarray(a)
    return a.astype(dtype, copy=False) if dtype is not None else a


def to_host(a):
    """Any array -> NumPy array."""
    if isinstance(a, np.ndarray):
        return a
    return a.get() if hasattr(a, "get") else np.asarray(a)


def openblas_libraries():
    """Paths of the OpenBLAS libraries loaded in this process, NumPy's first (Linux; else [])."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return []
    # NumPy's own first (numpy.libs/ beside numpy/): OpenCV's wheels bundle another OpenBLAS,
    # and setting that one's threads would leave NumPy's untouched
    numpy_home = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy")
    return sorted(libs, key=lambda p: (not p.startswith(numpy_home), p))


def openblas_function(name):
    """The ctypes function ``name`` (``"set_num_threads"``, ``"get_num_threads"``) of
    the OpenBLAS that NumPy loaded, or None (not Linux, or not OpenBLAS)."""
    import ctypes
    for path in openblas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):   # NumPy wheels rename the symbols
            for suffix in ("64_", ""):
                fn = getattr(lib, prefix + name + suffix, None)
                if fn is not None:
                    return fn
    return None


_blas_calls = {}     # OpenBLAS's ctypes functions, looked up once
_blas_lock = threading.Lock()
_blas_users = 0      # map_chunks calls now running chunks on the workers
_blas_saved = None   # OpenBLAS's thread count before the first of them


def _blas(name):
    if name not in _blas_calls:
        _blas_calls[name] = openblas_function(name)
    return _blas_calls[name]


def set_blas_threads(n):
    """Limit NumPy's OpenBLAS to ``n`` threads -> True if it could be done.

    A process-wide setting for the program that owns the process, not something minifer needs:
    for small GEMMs next to other thread pools (OpenCV's face detector in ``minifer.predict``),
    where OpenBLAS's idle threads spin-wait and take the cores the detector needs. Measured on
    2 cores, one 640x480 frame (detect at 320 px + one face): 34.7 ms with 2 BLAS threads,
    22.6 ms with 1. minifer's workers run on one BLAS thread each whatever the count
    (:func:`map_chunks`).
    """
    if _blas("set_num_threads") is None:
        return False
    _blas("set_num_threads")(int(n))
    return True


class one_blas_thread:
    """Context: NumPy's OpenBLAS on one thread inside it (``on=False``, or not on the CPU: no
    change), and back to the count it had afterwards; the last of several threads in it gives
    the count back. minifer uses it around its own calls only: while its workers run GEMMs side
    by side (:func:`map_chunks`), and around a model's pass over a batch (``Sequential``), so
    that no GEMM there wakes OpenBLAS's own threads, which spin for a while after each call on
    the cores the workers need next."""

    def __init__(self, on=True):
        self.on = on and DEVICE == "cpu"

    def __enter__(self):
        global _blas_users, _blas_saved
        if not self.on:
            return self
        get, put = _blas("get_num_threads"), _blas("set_num_threads")
        with _blas_lock:
            _blas_users += 1
            if _blas_users == 1 and get is not None:
                _blas_saved = get()
                if _blas_saved != 1:
                    put(1)
        return self

    def __exit__(self, *exc):
        global _blas_users
        if not self.on:
            return
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_saved not in (None, 1):
                _blas("set_num_threads")(_blas_saved)


def keep_freed_memory():
    """Ask glibc to reuse freed memory instead of returning it to the OS -> True if done.

    Not done by minifer itself: it changes how the whole process manages its memory, so only
    the program that owns the process should ask for it. By default glibc serves each block
    larger than its mmap threshold (up to 32 MB, raised as such blocks are freed) with a
    fresh ``mmap``, and the kernel zero-fills every page on first touch. Turning mmap off and
    raising the trim threshold keeps the pages mapped and reused. (Linux/glibc only.)
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)          # M_MMAP_MAX = 0: big blocks come from the heap
        libc.mallopt(-1, 1 << 30)    # M_TRIM_THRESHOLD = 1 GiB: keep freed pages
    except (OSError, AttributeError):
        return False
    return True


def usable_cpus():
    """The number of CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_workers = None      # minifer's worker threads (a ThreadPoolExecutor), started on first use
_worker_count = None  # how many: set_workers(n), else one per usable CPU
_workers_lock = threading.Lock()
_in_worker = threading.local()   # .on: this thread is one of them


def set_workers(n=None):
    """Run minifer's CPU kernels on ``n`` worker threads (``None``, the default: one per CPU this
    process may use; ``1``: everything in the calling thread) -> n. Not needed for speed: the
    workers start by themselves on first use; this is for tests and for sharing a machine.

    Each worker runs whole pieces of work (a convolution's chunk of images: tiles, GEMM, untile;
    a range of rows of a batch-norm or pooling kernel) with serial ``nogil`` Numba builds and one
    OpenBLAS thread, so these ``n`` threads are the only ones competing for the cores. Numba's
    own OpenMP pool is never started. With it, NumPy's OpenBLAS and Numba's OpenMP each kept a
    pool of threads, a convolution alternated between the two 20 times per layer, and a pool's
    threads spun for a while after each call, on the cores the other pool needed next. Measured
    on the 2-core CPU (forward + backward of the 48x48x32 Winograd convolution at batch 64, two
    fresh processes each, nothing else running): 34 + 64 and 34 + 79 ms with the two pools,
    20 + 33 and 19 + 33 ms on workers.
    """
    global _workers, _worker_count
    with _workers_lock:
        if _workers is not None:
            _workers.shutdown()
        _workers, _worker_count = None, None if n is None else max(1, int(n))
    return worker_count()


def worker_count():
    """How many threads minifer's kernels run on, the calling thread included (:func:`set_workers`;
    by default the CPUs this process could use when minifer first asked)."""
    global _worker_count
    if _worker_count is None:
        _worker_count = usable_cpus()
    return _worker_count


def _pool():
    """The helper threads, started on the first call (None when there is one worker)."""
    global _workers
    if _workers is None and worker_count() > 1:
        from concurrent.futures import ThreadPoolExecutor
        with _workers_lock:
            if _workers is None:
                _workers = ThreadPoolExecutor(worker_count() - 1, "minifer", initializer=setattr,
                                              initargs=(_in_worker, "on", True))
    return _workers


def _forget_workers():
    """In a forked child the parent's worker threads do not exist: start new ones on first use."""
    global _workers, _blas_users
    _workers, _blas_users = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def in_worker():
    """Whether this thread is one of minifer's workers (its work then runs serially, in it)."""
    return getattr(_in_worker, "on", False)


def map_chunks(fn, pieces):
    """``[fn(p) for p in pieces]``, on minifer's worker threads: the calling thread and the
    helpers (one fewer than :func:`worker_count`) take the pieces one by one, in order.

    One piece, one worker, or a call from a worker runs in the calling thread alone, with
    OpenBLAS on the count it has (all cores unless the program set it): minivgg's batch-1
    latency was 1.6-2.2 ms so against 2.5-3.0 ms on one BLAS thread (2 cores, alternating fresh
    processes). While the pieces run side by side, OpenBLAS runs on one thread
    (:class:`one_blas_thread`). The calling thread works too, instead of waiting for a helper
    to take each piece: measured on the 2 cores, a batch-norm pass over 64x48x48x32 values took
    1.2 ms in two pieces handed to two helpers, 2.1 ms in eight pieces, 2.4 ms in one thread.
    """
    pool = None if len(pieces) < 2 or in_worker() else _pool()
    if pool is None:
        return [fn(p) for p in pieces]
    out, order = [None] * len(pieces), iter(range(len(pieces)))

    def take():                       # next() on a range iterator is atomic under the GIL
        for i in order:
            out[i] = fn(pieces[i])

    with one_blas_thread():
        helpers = [pool.submit(take) for _ in range(min(len(pieces), worker_count()) - 1)]
        _in_worker.on = True
        try:
            take()
        finally:
            _in_worker.on = False
            for h in helpers:
                h.result()            # waits for the last pieces; raises a helper's error
    return out


def set_cpu_policy():
    """Does nothing; kept for old scripts. minifer is fast without it: its worker threads start
    by themselves on the first kernel call (:func:`map_chunks`), and it sets no environment
    variable and no allocator policy."""


if os.environ.get("MINIFER_DEVICE", "cpu").lower() not in ("", "cpu"):
    use_device(os.environ["MINIFER_DEVICE"])
