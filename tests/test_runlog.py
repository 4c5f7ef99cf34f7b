"""lungtrial.runlog: a job that stopped on bad input is one console line; any other failure keeps Snakemake's words.
(The workflow case, a strict-mode exclusion under --keep-going, is in test_bad_inputs.py.)"""

from __future__ import annotations

import logging

from snakemake_interface_logger_plugins.common import LogEvent

from lungtrial.runlog import _BriefInputErrors, input_error_line

LINE = "2026-12-06 14:06:07,997 ERROR lungtrial: scan S1-D7 excluded: No DICOM image was found in the folder."


def record(msg, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("snakemake.logging", logging.ERROR, __file__, 1, msg, (), None)
    rec.__dict__.update(extra)
    return rec


def job_error(log) -> logging.LogRecord:
    return record(
        "Error in rule quantify_scan, jobid: 3", event=LogEvent.JOB_ERROR, rule_name="quantify_scan", log=[str(log)]
    )


def test_an_input_error_is_the_logs_line_with_rule_and_log(tmp_path):
    log = tmp_path / "S1-D7.log"
    log.write_text("2026-12-06 14:06:07,001 INFO lungtrial: reading\n" + LINE + "\n")
    rec = job_error(log)
    assert _BriefInputErrors().filter(rec)
    assert rec.event is None
    assert rec.getMessage() == (
        f"quantify_scan failed: scan S1-D7 excluded: No DICOM image was found in the folder. (log: {log})"
    )


def test_a_bug_or_a_silent_failure_keeps_snakemakes_block(tmp_path):
    bug = tmp_path / "bug.log"
    bug.write_text(
        LINE.replace("scan S1-D7 excluded: No DICOM", "ValueError: bad") + "\nTraceback (most recent call last):\n"
    )
    silent = tmp_path / "killed.log"
    silent.write_text("2026-12-06 14:06:07,001 INFO lungtrial: reading\n")
    for log in (bug, silent, tmp_path / "never_written.log"):
        rec = job_error(log)
        assert _BriefInputErrors().filter(rec)
        assert rec.event == LogEvent.JOB_ERROR and rec.getMessage().startswith("Error in rule")
    assert input_error_line([bug]) is None and input_error_line([silent]) is None


def test_script_exit_frame_dropped_and_closing_error_plain():
    f = _BriefInputErrors()
    script = record(
        'RuleException:\nCalledProcessError in file "/w/workflow/rules/imaging.smk", line 44:\nCommand \'set -euo '
        "pipefail;  python /w/.snakemake/scripts/tmpab12.quantify_scan.py' returned non-zero exit status 1.",
        event=LogEvent.ERROR,
        exception="RuleException",
    )
    assert not f.filter(script)
    shell = record(
        'RuleException:\nCalledProcessError in file "/w/Snakefile", line 9:\nCommand \'set -euo pipefail;  '
        "false' returned non-zero exit status 1.",
        event=LogEvent.ERROR,
        exception="RuleException",
    )
    assert f.filter(shell)  # not one of our scripts: kept as it is
    closing = record(
        "WorkflowError:\nAt least one job did not complete successfully.",
        event=LogEvent.ERROR,
        exception="WorkflowError",
    )
    assert f.filter(closing) and "WorkflowError" not in closing.getMessage()
    other = record("WorkflowError:\nsomething else", event=LogEvent.ERROR, exception="WorkflowError")
    assert f.filter(other) and other.getMessage() == "WorkflowError:\nsomething else"
