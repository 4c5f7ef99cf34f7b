"""Logging helpers for the workflow scripts and the Snakefile (light imports only: every per-job process loads
this). Library code does not import this module; outputs are written with :mod:`lungtrial.io`."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from lungtrial.runlog import ENV_FLAG

#: ``extra=`` of a log record that reports bad input (one line, no traceback): see :func:`setup_logging`.
INPUT_ERROR = {"input_error": True}


def setup_logging(log_path: str | os.PathLike | None) -> logging.Logger:
    """Send log records (and uncaught exceptions) of a workflow script to its rule's log file and to stderr.

    An uncaught :class:`~lungtrial.errors.InputError` (bad input data: a sheet, a lab file, a scan that cannot be
    measured in strict mode) is logged as its message alone, one line per problem, and the script exits with
    status 1: the message says where and what, a traceback would only bury it. Any other exception is a bug and
    is logged with its traceback.

    When the main Snakemake process reports input errors itself (:mod:`lungtrial.runlog`), an input-error line
    goes to the log file only, so that the console shows it once, the same locally and on a cluster.
    """
    console = logging.StreamHandler(sys.stderr)
    if os.environ.get(ENV_FLAG):
        console.addFilter(lambda record: not getattr(record, "input_error", False))
    handlers: list[logging.Handler] = [console]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    log = logging.getLogger("lungtrial")

    def _hook(exc_type, exc, tb):
        from lungtrial.errors import InputError

        if issubclass(exc_type, InputError):
            log.error("%s", exc, extra=INPUT_ERROR)
        else:
            log.error("%s: %s", exc_type.__name__, exc, exc_info=(exc_type, exc, tb))

    sys.excepthook = _hook
    return log


@contextmanager
def quiet_logs(name: str = "lungtrial", level: int = logging.ERROR):
    """Within the block, drop the log records of logger ``name`` below ``level`` (default: keep only errors).

    For library calls made only to check inputs (the workflow reads every sheet when it starts): their
    informational messages and warnings belong in the log of the job that does the work, not on the console of
    every ``snakemake`` command.
    """
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
