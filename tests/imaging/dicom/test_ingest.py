"""Tests for lungtrial.imaging.dicom._ingest: the content of ``series.json`` and how an exclusion is reported."""

from __future__ import annotations

import pytest

from lungtrial.imaging import dicom
from lungtrial.errors import ScanExcluded


def test_exclusion_names_the_scan_once(tmp_path):
    (tmp_path / "scan").mkdir()
    series = dicom.ingest(tmp_path / "scan", "S1-D7")
    assert series["reasons"] == ["No DICOM image was found in the folder."]
    with pytest.raises(ScanExcluded) as raised:
        dicom.ingest(tmp_path / "scan", "S1-D7", strict=True)
    assert str(raised.value) == "scan S1-D7 excluded: No DICOM image was found in the folder."
