"""lungtrial.runlog: on the console, a job that stopped on bad input is its message; any other failure keeps
Snakemake's words, and nothing but the console changes. (The workflow case, a strict-mode exclusion under
--keep-going, is in workflow/test_bad_inputs.py.)"""

from __future__ import annotations

import io
import logging

import pytest
from snakemake.logging import DefaultFormatter
from snakemake_interface_logger_plugins.common import LogEvent

from lungtrial.runlog import ENV_FLAG, input_error_message, report_input_errors_briefly

LINE = "2026-12-06 14:06:07,997 ERROR lungtrial: scan S1-D7 excluded: No DICOM image was found in the folder."
SCRIPT_EXIT = (
    'RuleException:\nCalledProcessError in file "/w/workflow/rules/imaging.smk", line 44:\nCommand \'set -euo '
    "pipefail;  python /w/.snakemake/scripts/tmpab12.quantify_scan.py' returned non-zero exit status {}."
)


@pytest.fixture
def console(monkeypatch):
    """A logger like Snakemake's with its console handler (wrapped by the module) and a run-log handler beside it;
    returns (logger, console text, run-log text)."""
    monkeypatch.setenv(ENV_FLAG, "")  # restored (unset) at teardown, whatever the module sets
    monkeypatch.delenv(ENV_FLAG)
    logger = logging.getLogger("test_runlog.snakemake")
    logger.handlers.clear()
    logger.propagate = False
    streams = io.StringIO(), io.StringIO()
    for name, stream in zip(("DefaultStreamHandler", "DefaultLogFileHandler"), streams, strict=True):
        handler = logging.StreamHandler(stream)
        handler.set_name(name)
        handler.setFormatter(DefaultFormatter())
        logger.addHandler(handler)
    assert report_input_errors_briefly(logger.name) and report_input_errors_briefly(logger.name)  # once
    yield logger, *streams
    logger.handlers.clear()


def job_error(logger, log, jobid=3, rule_msg=None):
    """A record as Snakemake's ``Job.log_error`` makes it (``Job.get_log_error_info``)."""
    info = dict(
        event=LogEvent.JOB_ERROR,
        rule_name="quantify_scan",
        rule_msg=rule_msg,
        jobid=jobid,
        input=[],
        output=["results/scans/S1-D7/metrics.csv"],
        log=[str(log)],
        conda_env=None,
        container_img=None,
        aux={},
        indent=False,
        shellcmd=None,
    )
    logger.error(f"Error in rule quantify_scan, jobid: {jobid}", extra=info)


def test_an_input_error_is_its_message_on_the_console_only(console, tmp_path):
    logger, out, runlog = console
    log = tmp_path / "S1-D7.log"
    log.write_text("2026-12-06 14:06:07,001 INFO lungtrial: reading\n" + LINE + "\n")
    logger.error(SCRIPT_EXIT.format(1), extra=dict(event=LogEvent.ERROR, exception="RuleException"))
    job_error(logger, log)
    logger.error(
        "WorkflowError:\nAt least one job did not complete successfully.",
        extra=dict(event=LogEvent.ERROR, exception="WorkflowError"),
    )
    assert out.getvalue().splitlines() == [
        f"quantify_scan failed: scan S1-D7 excluded: No DICOM image was found in the folder. (log: {log})",
        "At least one job did not complete successfully. The lines above say which and why.",
    ]
    # the run's own log keeps Snakemake's words
    assert "CalledProcessError" in runlog.getvalue() and "Error in rule quantify_scan:" in runlog.getvalue()
    assert "WorkflowError" in runlog.getvalue()


def test_a_bug_a_killed_job_or_a_silent_failure_keeps_snakemakes_block(console, tmp_path):
    logger, out, _ = console
    bug = tmp_path / "bug.log"
    bug.write_text(
        LINE.replace("scan S1-D7 excluded: No DICOM", "ValueError: bad") + "\nTraceback (most recent call last):\n"
    )
    silent = tmp_path / "killed.log"
    silent.write_text("2026-12-06 14:06:07,001 INFO lungtrial: reading\n")
    for log in (bug, silent, tmp_path / "never_written.log"):
        job_error(logger, log)
    logger.error(SCRIPT_EXIT.format(137), extra=dict(event=LogEvent.ERROR, exception="RuleException"))
    text = out.getvalue()
    assert text.count("Error in rule quantify_scan:") == 3 and "exit status 137" in text
    assert input_error_message([bug]) is None and input_error_message([silent]) is None


def test_a_message_of_several_problems_and_the_executors_word(console, tmp_path):
    logger, out, _ = console
    log = tmp_path / "labs.log"
    log.write_text(
        "2026-12-06 14:06:07,997 ERROR lungtrial: 2 problem(s) in the lab files:\n"
        "  trial/labs.csv, row 3: value 'pos' (expected a number)\n"
        "  trial/labs.csv, row 9: unit 'mg' (expected one of ...)\n"
        "2026-12-06 14:06:08,001 INFO lungtrial: done\n"
    )
    job_error(logger, log, rule_msg="SLURM-job '42' failed, SLURM status is: 'FAILED'")
    assert out.getvalue().splitlines() == [
        "quantify_scan failed: 2 problem(s) in the lab files:",
        "  trial/labs.csv, row 3: value 'pos' (expected a number)",
        f"  trial/labs.csv, row 9: unit 'mg' (expected one of ...) (log: {log}) "
        "[SLURM-job '42' failed, SLURM status is: 'FAILED']",
    ]


def test_a_group_job_names_its_members_input_errors_once(console, tmp_path):
    logger, out, _ = console
    bad, good = tmp_path / "bad.log", tmp_path / "good.log"
    bad.write_text(LINE + "\n")
    good.write_text("2026-12-06 14:06:07,001 INFO lungtrial: scan S1-D0: ok\n")
    members = [
        {"rule_name": "quantify_scan", "jobid": 3, "log": [str(bad)], "output": []},
        {"rule_name": "quantify_scan", "jobid": 4, "log": [str(good)], "output": []},
    ]
    logger.error(
        "Error in group scan",
        extra=dict(event=LogEvent.GROUP_ERROR, groupid="scan", aux_logs=["slurm.log"], job_error_info=members),
    )
    job_error(logger, bad, jobid=3)
    job_error(logger, good, jobid=4)
    lines = out.getvalue().splitlines()
    assert lines[:2] == [
        "group job scan failed (log: slurm.log):",
        f"  quantify_scan failed: scan S1-D7 excluded: No DICOM image was found in the folder. (log: {bad})",
    ]
    assert sum("S1-D7 excluded" in line for line in lines) == 1  # the member's own record is not printed again
    assert "Error in rule quantify_scan:" in out.getvalue()  # the other member: Snakemake's words


def test_without_snakemakes_console_handler_nothing_changes(monkeypatch):
    monkeypatch.setenv(ENV_FLAG, "")
    monkeypatch.delenv(ENV_FLAG)
    logger = logging.getLogger("test_runlog.other")
    logger.handlers.clear()
    logger.addHandler(logging.StreamHandler(io.StringIO()))
    assert not report_input_errors_briefly(logger.name)
    assert ENV_FLAG not in __import__("os").environ  # the jobs then print their messages themselves
    logger.handlers.clear()
