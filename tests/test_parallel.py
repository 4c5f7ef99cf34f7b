"""lungtrial.parallel: the thread limit is set and restored (SimpleITK's too), and the pool runs work beside the
caller or in it as the limit allows."""

import threading

import pytest

from lungtrial import parallel


def test_limit_sets_and_restores_the_thread_count():
    before = parallel.threads()
    with parallel.limit(1) as n:
        assert n == 1 and parallel.threads() == 1
        sitk = parallel.simpleitk()
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
    assert parallel.threads() == before
    with parallel.limit(None) as n:
        assert n == before
    with pytest.raises(ValueError, match=">= 1"):
        with parallel.limit(0):
            pass


def test_pool_runs_in_the_caller_when_no_thread_is_spare():
    caller = threading.get_ident()
    with parallel.limit(1), parallel.pool(2) as pool:
        assert pool.submit(threading.get_ident).result() != caller  # one thread, the caller waits
    with parallel.limit(1), parallel.pool(1, beside_caller=True) as pool:
        assert pool.submit(threading.get_ident).result() == caller
        failed = pool.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failed.result()
        assert list(pool.map(abs, [-1, -2])) == [1, 2]
    with parallel.limit(2), parallel.pool(1, beside_caller=True) as pool:
        assert pool.submit(threading.get_ident).result() != caller
