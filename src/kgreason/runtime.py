"""Process-level tuning for CPU training, applied at the edge (the CLI, benchmarks), never on import.

glibc's ``malloc`` serves large blocks with ``mmap`` and hands freed memory at the top of the heap back to the
system (``trim``). A training step allocates and frees many tensors of a few MB (feature maps, gradients), so
with the default thresholds every step page-faults and zero-fills them again. glibc raises its thresholds by
itself once a block larger than the current one is freed, which is why a process that happened to run a large
matmul first trains faster than a fresh one: ConvE on Kinship, sLCWA with one negative, bfloat16, 2 threads,
measured 1.16 s per epoch fresh and 0.61 s with the thresholds below (PyKEEN's in the same process: 3.03 s and
2.70 s; docs/benchmarks.md). :func:`tune_cpu_allocator` sets them up front.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_cpu_allocator"]

#: blocks up to this size come from the heap, not from ``mmap`` (glibc's own upper limit on 64-bit systems)
MMAP_THRESHOLD = 32 * 1024 * 1024
#: free memory at the top of the heap is returned to the system beyond this size (glibc's dynamic rule: 2x)
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3

#: set this environment variable to 1 to leave the allocator alone
OPT_OUT_VARIABLE = "KGREASON_NO_MALLOC_TUNING"


def tune_cpu_allocator() -> bool:
    """Raise glibc's ``mmap`` and trim thresholds (``MMAP_THRESHOLD``, ``TRIM_THRESHOLD``) for this process.

    Returns whether they were set: ``False`` off Linux, without glibc, or when the environment variable
    ``KGREASON_NO_MALLOC_TUNING=1`` opts out. The cost is memory: up to ``TRIM_THRESHOLD`` of freed heap stays
    with the process. Setting glibc's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` variables, or
    preloading another allocator (jemalloc, tcmalloc), is the equivalent outside Python.
    """
    if os.environ.get(OPT_OUT_VARIABLE, "").strip() not in ("", "0") or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
