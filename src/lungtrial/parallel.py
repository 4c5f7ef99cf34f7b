"""How many threads the library's array work may use at once (per process).

The per-scan stages split numpy work over threads (numpy releases the GIL in its loops), write files on threads
(zlib, PNG encoding) and call multi-threaded SimpleITK filters. All of them ask :func:`threads` how many they may
use, so that a Snakemake job gets what its rule declares (``threads:``, lowered by ``--cores`` or
``--set-threads``). Default: 2.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor

_threads = 2


def threads() -> int:
    """Threads the library may use at once (>= 1)."""
    return _threads


def _apply_to_simpleitk(n: int) -> None:
    sitk = sys.modules.get("SimpleITK")
    if sitk is not None:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)


def simpleitk():
    """SimpleITK, imported with its filters limited to :func:`threads` threads."""
    import SimpleITK as sitk

    _apply_to_simpleitk(_threads)
    return sitk


@contextlib.contextmanager
def limit(n: int | None) -> Iterator[int]:
    """Within the block, the library uses at most ``n`` threads (None: unchanged). Yields the limit in force."""
    global _threads
    if n is None:
        yield _threads
        return
    n = int(n)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    before = _threads
    _threads = n
    _apply_to_simpleitk(n)
    try:
        yield n
    finally:
        _threads = before
        _apply_to_simpleitk(before)


class _Inline(Executor):
    """An executor that runs each task at once in the calling thread (when no other thread may be used)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever asks for the result, as a pool would
            future.set_exception(exc)
        return future


def pool(workers: int, *, beside_caller: bool = False) -> Executor:
    """A thread pool of at most ``workers`` threads within :func:`threads`.

    ``beside_caller``: the calling thread keeps working while the pool runs, so the pool gets one thread less.
    With no thread to spare the tasks run in the calling thread as they are submitted. Use as a context manager.
    """
    n = min(workers, _threads - (1 if beside_caller else 0))
    return ThreadPoolExecutor(max_workers=n) if n >= 1 else _Inline()


def in_halves(work, n: int, min_items: int = 8) -> None:
    """Run ``work(range)`` over ``range(n)`` split in two halves on two threads (numpy releases the GIL in its
    loops); one call when ``n`` is small."""
    if n < min_items or threads() < 2:
        work(range(n))
        return
    half = n // 2
    with pool(2) as halves:
        for f in [halves.submit(work, range(0, half)), halves.submit(work, range(half, n))]:
            f.result()
