"""Tests for lungtrial.imaging.dicom._values: which ConvolutionKernel values are shown in outputs."""

from __future__ import annotations

import json

import pytest

from lungtrial.imaging import dicom

from dicom_files import write_stack


@pytest.mark.parametrize(
    ("kernel", "shown"),
    [("B30f", "B30f"), ("Br40d\\3", "Br40d\\3"), ("STANDARD", "STANDARD"), ("FC13-H", "FC13-H"), ("YC", "YC")]
    + [("HD LUNG", "HD LUNG"), ("B_SOFT_B", "B_SOFT_B"), ("Body Standard", "Body Standard"), ("IMR1", "IMR1")]
    + [(v, "not shown (free text)") for v in ("DOEJOHN450101", "DOE^JOHN", "19650101", "12345678", "B30f\\4711")],
)
def test_kernel_free_text_is_shown_only_when_it_reads_as_a_kernel_name(tmp_path, truth, kernel, shown):
    write_stack(tmp_path / "scan", truth, edit=lambda ds, k: setattr(ds, "ConvolutionKernel", kernel))
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "ok"
    assert series["geometry"]["kernel"] == shown and [c["kernel"] for c in series["candidates"]] == [shown]
    assert f"kernel {shown})" in series["reason"]
    if shown != kernel:
        assert kernel.split("\\")[-1] not in json.dumps(series)
        listed = dicom.ingest(tmp_path / "scan", "S1", prefer_kernels=[kernel.lower()])
        assert listed["geometry"]["kernel"] == kernel  # a name the user listed is shown
