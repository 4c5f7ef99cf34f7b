"""lungtrial.wfutil: a workflow script's log (an input error as its message alone, a bug with its traceback, the
console left to the main process when it reports input errors) and the quieted checks of the workflow's start."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from lungtrial.runlog import ENV_FLAG
from lungtrial.wfutil import quiet_logs


def test_a_job_ends_an_input_error_in_its_message_alone(tmp_path):
    script = (
        "from lungtrial.errors import InputError\n"
        "from lungtrial.wfutil import setup_logging\n"
        "setup_logging(__import__('sys').argv[1])\n"
        "raise InputError('labs.csv, row 3: value \\'pos\\' (expected a number)')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "job.log")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith("labs.csv, row 3: value 'pos' (expected a number)")
    assert (tmp_path / "job.log").read_text().strip().endswith("(expected a number)")
    bug = script.replace("raise InputError(", "raise KeyError(")
    proc = subprocess.run([sys.executable, "-c", bug, str(tmp_path / "bug.log")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" in (tmp_path / "bug.log").read_text()  # a bug keeps its traceback


def test_with_the_main_process_reporting_an_input_error_is_in_the_log_file_only(tmp_path):
    """The main Snakemake process prints the job's message (lungtrial.runlog): the job keeps it out of stderr, so the
    console shows it once; other records still go to both. The log's folder is created."""
    script = (
        "from lungtrial.errors import InputError\n"
        "from lungtrial.wfutil import setup_logging\n"
        "log = setup_logging(__import__('sys').argv[1])\n"
        "log.info('reading the scans sheet')\n"
        "raise InputError('scans.csv, row 2: dicom_dir of scan S1 is not an existing folder')\n"
    )
    log_path = tmp_path / "logs" / "quantify_scan" / "S1.log"
    env = {**os.environ, ENV_FLAG: "1"}
    cmd = [sys.executable, "-c", script, str(log_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 1
    assert "reading the scans sheet" in proc.stderr and "not an existing folder" not in proc.stderr
    logged = log_path.read_text()
    assert "reading the scans sheet" in logged
    assert logged.strip().endswith("ERROR lungtrial: scans.csv, row 2: dicom_dir of scan S1 is not an existing folder")
    assert "Traceback" not in logged


def test_quiet_logs_keeps_only_errors_within_the_block_and_restores_the_level(caplog):
    caplog.set_level(logging.INFO, logger="lungtrial")
    log = logging.getLogger("lungtrial.clinical")
    with quiet_logs():
        log.info("12 subjects read")
        log.warning("lab unit 'mmol/l' read as 'mmol/L'")
        log.error("labs.csv, row 3: value 'pos' (expected a number)")
    log.info("after the check")
    assert [r.getMessage() for r in caplog.records] == [
        "labs.csv, row 3: value 'pos' (expected a number)",
        "after the check",
    ]
    assert logging.getLogger("lungtrial").level == logging.INFO


def test_quiet_logs_restores_the_level_when_the_block_raises():
    logger = logging.getLogger("lungtrial.test_wfutil")
    logger.setLevel(logging.DEBUG)
    with pytest.raises(KeyError), quiet_logs("lungtrial.test_wfutil", logging.WARNING):
        assert logger.level == logging.WARNING
        raise KeyError("a bug")
    assert logger.level == logging.DEBUG
