"""Tests for lungtrial.imaging._handover: each scan's DICOM folder (and lesion mask) handed from the workflow process
to its jobs through an in-memory file, never outliving the run; messages name the sheet row, never the path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lungtrial.errors import InputError


HAND_OVER = """
import json, subprocess, sys
from lungtrial.imaging import hand_over_folders
path = hand_over_folders({"S1": {"folder": sys.argv[1], "sheet": "scans.csv", "row": 2, "subject": "P01"}}, sys.argv[2])
job = "from lungtrial.imaging import scan_folder; print(json.dumps([str(x) for x in scan_folder('S1')]))"
print(path)
print(subprocess.run([sys.executable, "-c", "import json; " + job], capture_output=True, text=True, check=True).stdout)
"""


def test_the_folder_hand_over_does_not_outlive_the_run(tmp_path):
    """The jobs a workflow process starts read each scan's folder from it; when that process ends (however: here
    it just exits, a kill is the same for an in-memory file) nothing of it is left, in its temporary folder or
    anywhere else."""
    tmpdir = tmp_path / "snakemake-tmp"
    tmpdir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", HAND_OVER, str(tmp_path / "DOE_JOHN"), str(tmpdir)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    path, job = proc.stdout.splitlines()[:2]
    assert json.loads(job) == [str(tmp_path / "DOE_JOHN"), "scans.csv", "2"]
    assert not Path(path).exists() and list(tmpdir.iterdir()) == []


def test_a_missing_folder_is_named_by_its_sheet_row_never_by_its_path(tmp_path, monkeypatch):
    from lungtrial.imaging import _handover

    monkeypatch.setenv(_handover.FOLDERS_ENV, "")  # restored after the test, whatever hand_over_folders sets
    with pytest.raises(InputError, match="not handed over by the workflow"):
        _handover.existing_scan_folder("S1")
    (tmp_path / "1.2.840.99").mkdir()
    folders = {
        "S1": {"folder": str(tmp_path / "1.2.840.99"), "sheet": "scans.csv", "row": 2, "subject": "P01"},
        "S2": {"folder": str(tmp_path / "DOE_JOHN"), "sheet": "scans.csv", "row": 3, "subject": "P01"},
    }
    monkeypatch.setattr(_handover, "_HANDED_OVER", [])
    try:
        path = _handover.hand_over_folders(folders, tmp_path)
        assert _handover.existing_scan_folder("S1") == tmp_path / "1.2.840.99"
        with pytest.raises(InputError) as exc:
            _handover.existing_scan_folder("S2")
        message = str(exc.value)
        assert message.startswith("scans.csv, row 3: dicom_dir of scan S2 (subject P01) is not an existing folder")
        assert "DOE_JOHN" not in message
    finally:
        for fd in _handover._HANDED_OVER:
            os.close(fd)
    assert not Path(path).exists()


def test_lesion_mask_handed_over_as_a_link_named_by_the_scan(tmp_path, monkeypatch):
    from lungtrial.imaging import _handover

    (tmp_path / "scan").mkdir()
    mask = tmp_path / "DOE_JOHN_mask.nii.gz"
    mask.write_bytes(b"not read here")
    folders = {
        "S1": {"folder": str(tmp_path / "scan"), "lesion_mask": str(mask)},
        "S2": {"folder": str(tmp_path / "scan")},
        "S3": {"folder": str(tmp_path / "scan"), "lesion_mask": str(tmp_path / "DOE_JANE.nii")},
    }
    monkeypatch.setenv(_handover.FOLDERS_ENV, "")
    monkeypatch.setattr(_handover, "_HANDED_OVER", [])
    try:
        _handover.hand_over_folders(folders, tmp_path)
        assert _handover.scan_folder("S2") == (tmp_path / "scan", "the scans sheet", None)
        with _handover.handed_over_lesion_mask("S1") as link:
            assert link.name == "S1.nii.gz" and link.read_bytes() == b"not read here"
        assert not link.exists() and mask.exists()  # the link is gone, the file stays
        with _handover.handed_over_lesion_mask("S2") as none:
            assert none is None
        with pytest.raises(InputError) as exc, _handover.handed_over_lesion_mask("S3"):
            pass
        assert str(exc.value).startswith("scan S3: its lesion mask") and "DOE_JANE" not in str(exc.value)
    finally:
        for fd in _handover._HANDED_OVER:
            os.close(fd)
