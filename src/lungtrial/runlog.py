"""What the console shows when a job stops on bad input: its message, not Snakemake's failure block.

A workflow script that meets bad input (a scan's folder gone, a scan that cannot be measured in strict mode, a
change pair of two patients) writes its message, ``ERROR lungtrial: <where and what>`` (one line per problem), to
its rule's log and exits with status 1 (:func:`lungtrial.wfutil.setup_logging`). Snakemake then prints, for any
failed job, a ``RuleException: CalledProcessError ... returned non-zero exit status 1`` block, the rule's ``Error in
rule`` block and, under ``--keep-going``, ``WorkflowError: At least one job did not complete successfully``: frames
that only say which step failed, and bury the message that says why.

:func:`report_input_errors_briefly`, called by the Snakefile in the main Snakemake process, changes what Snakemake's
console handler prints, and nothing else (the run's log under ``.snakemake/log/``, logger plugins and the records
themselves are untouched):

- a failed job whose log holds such a message and no Python traceback is printed as that message, with the rule
  and the log's path: ``quantify_scan failed: scan S1-D7: ... (log: logs/quantify_scan/S1-D7.log)``, plus what the
  executor said of the job when it said anything (a SLURM status); the members of a failed group job likewise.
  The job writes its message to its log only, so the console shows it once, locally and on a cluster;
- every other failure (a bug: the log holds a traceback; a job killed for memory or time) keeps Snakemake's words;
- the ``CalledProcessError`` record of a script job that exited with status 1 is not printed (it says only that
  the script exited: the lines above say why; another status, e.g. 137 for a killed job, is printed), and the
  closing ``WorkflowError`` is printed as its message alone.

When Snakemake's console handler is not found (another Snakemake version, a logger plugin writing to the
console), nothing is changed and the jobs print their messages themselves.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

#: Set in the environment of the jobs when the main process reports their input errors (jobs inherit it, also on
#: a cluster); a script then writes its input-error message to its log only.
ENV_FLAG = "LUNGTRIAL_MAIN_REPORTS_INPUT_ERRORS"

_RECORD = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[,.]\d+ [A-Z]+ ")  # a log record's first line
_LINE = re.compile(r"^\S+ \S+ ERROR lungtrial: (?P<message>.+)$")
_SCRIPT_EXIT_1 = re.compile(
    r"CalledProcessError in .*\.snakemake[/\\]scripts[/\\].*returned non-zero exit status 1\.", re.DOTALL
)
_INCOMPLETE = "At least one job did not complete successfully."


def input_error_message(logs: Iterable[str | os.PathLike]) -> str | None:
    """The input-error message a job left in its log files (the ``ERROR lungtrial:`` records, each with its
    continuation lines), or None: a log holding a Python traceback (a bug) or no such record is not an input
    error."""
    found: list[str] = []
    for path in logs:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        if "Traceback (most recent call last)" in text:
            return None
        inside = False
        for line in text.splitlines():
            match = _LINE.match(line)
            if match:
                found.append(match.group("message").rstrip())
                inside = True
            elif inside and line.strip() and not _RECORD.match(line):
                found.append("  " + line.strip())
            else:
                inside = False
    return "\n".join(found) or None


def _event(record: logging.LogRecord) -> str | None:
    event = getattr(record, "event", None)
    return getattr(event, "value", event)


def _job_line(rule: str, logs: list[str], status: str | None) -> str | None:
    message = input_error_message(logs)
    if message is None:
        return None
    said = f" [{status}]" if status else ""
    return f"{rule} failed: {message} (log: {', '.join(logs)}){said}"


class _BriefFormatter(logging.Formatter):
    """Snakemake's console formatter, except for jobs that stopped on bad input (see the module docstring); with
    :meth:`filter`, the console handler's filter. ``shown``: job ids of group members already printed."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()
        self.shown: set = set()

    def format(self, record: logging.LogRecord) -> str:
        event = _event(record)
        if event == "job_error":
            logs = [str(p) for p in getattr(record, "log", None) or []]
            line = _job_line(getattr(record, "rule_name", "a job"), logs, getattr(record, "rule_msg", None))
            if line is not None:
                return line
        elif event == "group_error":
            lines = []
            for member in getattr(record, "job_error_info", None) or []:
                logs = [str(p) for p in member.get("log") or []]
                line = _job_line(member.get("rule_name", "a job"), logs, None)
                if line is not None:
                    lines.append(f"  {line}")
                    self.shown.add(member.get("jobid"))
            if lines:
                logs = [str(p) for p in getattr(record, "aux_logs", None) or []]
                where = f" (log: {', '.join(logs)})" if logs else ""
                return "\n".join([f"group job {getattr(record, 'groupid', '')} failed{where}:", *lines])
        elif event == "error" and getattr(record, "exception", None) == "WorkflowError":
            if str(record.msg).rstrip().endswith(_INCOMPLETE):
                return f"{_INCOMPLETE} The lines above say which and why."
        return self.inner.format(record)

    def filter(self, record: logging.LogRecord) -> bool:
        """Leave out the ``CalledProcessError`` record of a script job that exited with status 1, and a group
        member's own error block once the group's lines named it (see the module docstring)."""
        event = _event(record)
        if event == "error" and getattr(record, "exception", None) == "RuleException":
            return not _SCRIPT_EXIT_1.search(str(record.msg))
        if event == "job_error" and getattr(record, "jobid", None) in self.shown:
            return False
        return True


def report_input_errors_briefly(logger_name: str = "snakemake.logging") -> bool:
    """Wrap the formatter of Snakemake's console handler (once) and tell the jobs started from here that their
    input-error messages are reported by this process. Call it from the Snakefile, in the main process only.
    Returns whether the console handler was found (if not, nothing is changed)."""
    handlers = [h for h in logging.getLogger(logger_name).handlers if h.get_name() == "DefaultStreamHandler"]
    for handler in handlers:
        if not isinstance(handler.formatter, _BriefFormatter):
            brief = _BriefFormatter(handler.formatter)
            handler.setFormatter(brief)
            handler.addFilter(brief)
    if handlers:
        os.environ[ENV_FLAG] = "1"
    return bool(handlers)
