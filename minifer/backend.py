"""One array module for the whole framework: ``xp`` is NumPy or CuPy.

The choice is made once, at import, from the environment variable
``MINIFER_DEVICE`` (``cpu``, the default, or ``gpu``), or later with
:func:`use_device`. Layers never import numpy or cupy themselves for array
work; they call ``backend.xp`` so the same code runs on both::

    from minifer import backend
    backend.use_device("gpu")      # raises a clear error without CuPy
    x = backend.to_device(host_array)
    y = backend.to_host(x)         # always a NumPy array

Importing minifer never imports CuPy unless the GPU is asked for, and never
changes the process: thread and allocator policy is set only by
:func:`set_cpu_policy` (or :func:`set_blas_threads` and :func:`set_workers`), which the
command lines call at start-up and a Python user may call.
"""
import os
import sys
import threading

import numpy as np

xp = np            # the active array module
DEVICE = "cpu"     # "cpu" or "gpu"
DTYPE = np.float32  # the framework's compute dtype
_workers = None     # minifer's CPU worker threads (a ThreadPoolExecutor), started by set_workers
_in_worker = threading.local()   # .on: this thread is one of them


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
_blas_now = None     # OpenBLAS's thread count as last set here
_blas_own = None     # the count for work in the calling thread (set_blas_threads; else OpenBLAS's own)


def _blas(name):
    if name not in _blas_calls:
        _blas_calls[name] = openblas_function(name)
    return _blas_calls[name]


def _blas_threads(n):
    """OpenBLAS on ``n`` threads (a ctypes call only when that changes the count)."""
    global _blas_now
    if n is not None and _blas_now != n and _blas("set_num_threads") is not None:
        _blas("set_num_threads")(n)
        _blas_now = n


def set_blas_threads(n):
    """Limit NumPy's OpenBLAS to ``n`` threads -> True if it could be done.

    For small GEMMs next to other thread pools (OpenCV's face detector in
    ``minifer.predict``): OpenBLAS's idle threads spin-wait and take the cores
    the detector needs. Measured on 2 cores, one 640x480 frame (detect at 320 px
    + one face): 34.7 ms with 2 BLAS threads, 22.6 ms with 1. The count holds for
    the work of the calling thread; minifer's workers run on one BLAS thread each
    (:func:`map_chunks`).
    """
    global _blas_own
    if _blas("set_num_threads") is None:
        return False
    _blas_own = int(n)
    _blas_threads(_blas_own)
    return True


def keep_freed_memory():
    """Ask glibc to reuse freed memory instead of returning it to the OS -> True if done.

    A training step allocates and frees the same large arrays (im2col buffers)
    every time. By default glibc serves each big block with a fresh ``mmap`` and
    the kernel zero-fills every page on first touch: measured here, that made
    im2col 6x slower (85 ms vs 14 ms for a 64x48x48x32 batch). Turning mmap off
    and raising the trim threshold keeps the pages mapped and reused.
    Process-wide: the whole process's allocations keep their freed pages.
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


def set_workers(n):
    """Run the chunks of each convolution on ``n`` worker threads of minifer's own (``n <= 1``:
    in the calling thread, as before) -> n.

    Each worker runs whole chunks (tiles, GEMM, untile) with the serial kernel builds and one
    OpenBLAS thread, so these ``n`` threads are the only ones competing for the cores. Without
    them, NumPy's OpenBLAS and Numba's OpenMP each keep a pool of threads, the convolution
    alternates between the two 20 times per layer, and a pool's threads spin for a while after
    each call, taking the cores the other pool needs next. Measured on the 2-core CPU (forward +
    backward of the 48x48x32 Winograd convolution at batch 64, two fresh processes each, nothing
    else running): 34 + 64 and 34 + 79 ms with the two pools, 20 + 33 and 19 + 33 ms on workers.
    """
    global _workers, _blas_now, _blas_own
    from concurrent.futures import ThreadPoolExecutor
    if _blas_own is None and _blas("get_num_threads") is not None:
        _blas_now = _blas_own = _blas("get_num_threads")()
    if _workers is not None:
        _workers.shutdown()
    n = max(1, int(n))
    _workers = None if n == 1 else ThreadPoolExecutor(n, "minifer", initializer=setattr,
                                                      initargs=(_in_worker, "on", True))
    return n


def in_worker():
    """Whether this thread is one of minifer's workers (its kernels then run their serial builds)."""
    return getattr(_in_worker, "on", False)


def map_chunks(fn, slices):
    """``[fn(s) for s in slices]``, on the worker threads if :func:`set_workers` started them.

    The workers run OpenBLAS on one thread each. A single chunk (one face) runs in the calling
    thread with OpenBLAS on its own count (:func:`set_blas_threads`; all cores by default):
    minivgg's batch-1 latency was 1.6-2.2 ms so against 2.5-3.0 ms on one BLAS thread (2 cores,
    alternating fresh processes). The count stays as the last call left it, so a training step's
    dense layers run on one BLAS thread as well, and no idle BLAS thread spins beside the workers.
    """
    if _workers is None:
        return [fn(s) for s in slices]
    if len(slices) < 2:
        _blas_threads(_blas_own)
        return [fn(s) for s in slices]
    _blas_threads(1)
    return list(_workers.map(fn, slices))


def set_cpu_policy():
    """The process-wide settings minifer's CPU speed figures are measured with.

    * OpenMP threads (Numba's kernels) wait passively between kernels
      (``OMP_WAIT_POLICY=PASSIVE`` unless already set), so they do not steal the
      cores from the OpenBLAS GEMM that runs right after. Measured on 2 cores:
      batch-1 minivgg latency 60 ms with the default (active) policy, 4.6 ms
      passive. It takes effect only if called before the first parallel kernel
      runs (OpenMP reads it once, when it starts).
    * glibc keeps freed memory (:func:`keep_freed_memory`).
    * One minifer worker thread per core (:func:`set_workers`): each convolution's chunks of
      images run side by side on them.

    The command lines call it first thing in ``main()``; library code never does.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    keep_freed_memory()
    set_workers(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())


if os.environ.get("MINIFER_DEVICE", "cpu").lower() not in ("", "cpu"):
    use_device(os.environ["MINIFER_DEVICE"])
