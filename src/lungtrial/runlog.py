"""What the console shows when a job stops on bad input: one line, not Snakemake's failure block.

A workflow script that meets bad input (a scan's folder gone, a scan that cannot be measured in strict mode, a
change pair whose masks cannot be read) writes one line, ``ERROR lungtrial: <where and what>``, to its rule's log
and exits with status 1 (:func:`lungtrial.wfutil.setup_logging`). Snakemake then prints, for any failed job, a
``RuleException: CalledProcessError ... returned non-zero exit status 1`` block, the rule's ``Error in rule``
block and, under ``--keep-going``, ``WorkflowError: At least one job did not complete successfully``: frames that
only say which step failed, and bury the line that says why.

:func:`report_input_errors_briefly`, called by the Snakefile in the main Snakemake process, installs a filter on
Snakemake's logger that

- prints a failed job whose log holds such a line and no Python traceback as that line alone, with the rule and
  the log's path: ``quantify_scan failed: scan S1-D7: ... (log: logs/quantify_scan/S1-D7.log)``; the same locally
  and on a cluster, where the job's own output is not on the console. The job writes its line to its log only
  (the main process prints it once);
- leaves every other failure (a bug: the log holds a traceback; a job killed for memory or time) in Snakemake's
  own words, so nothing is hidden;
- drops the ``CalledProcessError`` record of a failed script job (it says only that the script exited with a
  non-zero status: the lines above say why) and prints the closing ``WorkflowError`` as its message alone.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

#: Set in the environment of the jobs when the main process reports their input errors (jobs inherit it, also on
#: a cluster); a script then writes its input-error line to its log only.
ENV_FLAG = "LUNGTRIAL_MAIN_REPORTS_INPUT_ERRORS"

_LINE = re.compile(r"^\S+ \S+ ERROR lungtrial: (?P<message>.+)$")
_SCRIPT_EXIT = re.compile(r"CalledProcessError in .*returned non-zero exit status", re.DOTALL)
_INCOMPLETE = "At least one job did not complete successfully."


def input_error_line(logs: Iterable[str | os.PathLike]) -> str | None:
    """The input-error message a job left in its log files, or None: a log holding a Python traceback (a bug) or
    no ``ERROR lungtrial:`` line is not an input error. Several such lines are joined with ``; ``."""
    found = []
    for path in logs:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        if "Traceback (most recent call last)" in text:
            return None
        found += [m.group("message").strip() for m in map(_LINE.match, text.splitlines()) if m]
    return "; ".join(found) or None


class _BriefInputErrors(logging.Filter):
    """See the module docstring. Records are changed in place (Python 3.11 filters return a bool)."""

    def filter(self, record: logging.LogRecord) -> bool:
        event = getattr(record, "event", None)
        name = getattr(event, "value", event)
        if name == "job_error":
            logs = [str(p) for p in (getattr(record, "log", None) or [])]
            message = input_error_line(logs)
            if message is not None:
                rule = getattr(record, "rule_name", "a job")
                record.event = None
                record.msg, record.args = f"{rule} failed: {message} (log: {', '.join(logs)})", ()
            return True
        if name == "error":
            text = str(record.msg)
            if getattr(record, "exception", None) == "RuleException" and _SCRIPT_EXIT.search(text):
                return ".snakemake/scripts/" not in text and ".snakemake\\scripts\\" not in text
            if getattr(record, "exception", None) == "WorkflowError" and text.rstrip().endswith(_INCOMPLETE):
                record.event = None
                record.msg, record.args = f"{_INCOMPLETE} The lines above say which and why.", ()
        return True


def report_input_errors_briefly(logger_name: str = "snakemake.logging") -> None:
    """Install the filter on Snakemake's logger (once) and tell the jobs started from here that their input-error
    lines are reported by this process. Call it from the Snakefile, in the main process only."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _BriefInputErrors) for f in logger.filters):
        logger.addFilter(_BriefInputErrors())
    os.environ[ENV_FLAG] = "1"
