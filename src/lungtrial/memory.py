"""Volume-sized arrays in ordinary memory pages.

numpy asks the kernel for transparent huge pages (``madvise``) for every large array. Where the kernel must
compact memory to find them, faulting a fresh volume in stalls for a few tenths of a second, at random; untouched
ordinary pages cost nothing and read as zeros, and ``MAP_POPULATE`` maps a whole array in one system call.
"""

from __future__ import annotations

import mmap

import numpy as np

#: False: every array is a plain ``np.zeros`` (``python benchmarks/bench_scan.py pipeline --without memory``
#: measures what this path buys: on 300 x 512 x 512 the scan's median 1.17 -> 1.54 s, +32 %, best of 5 +10 %).
ENABLED = True

#: Arrays smaller than this (bytes) are plain numpy allocations.
SMALL_BYTES = 1 << 22


def new_volume(shape, dtype, populate: bool = False) -> np.ndarray:
    """A zero-filled, writable array for a volume-sized output, in fresh anonymous memory of ordinary pages.

    Parameters
    ----------
    shape : array shape, e.g. (z, y, x).
    dtype : numpy dtype.
    populate : map every page at once (``MAP_POPULATE``; for arrays that will be written throughout, such as a CT
        volume being read), instead of as each is first touched (for arrays of which only a part is written, such
        as masks within the lungs' bounding box).

    Small arrays, and every array where anonymous mappings are not available (Windows), are plain ``np.zeros``.
    The memory is freed with the array.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if not ENABLED or nbytes < SMALL_BYTES or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.zeros(shape, dtype=dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    if populate:
        flags |= getattr(mmap, "MAP_POPULATE", 0)
    return np.frombuffer(mmap.mmap(-1, nbytes, flags=flags), dtype=dtype).reshape(shape)
