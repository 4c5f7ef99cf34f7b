"""Tests for lungtrial.imaging.dicom._checks: the QC issues of the chosen series."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from lungtrial.imaging import dicom
from lungtrial.errors import InputError, ScanExcluded

from dicom_files import named, set_pixels, write_stack


MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def test_missing_slice_excludes_scan_naming_files(tmp_path, truth):
    write_stack(tmp_path / "scan", truth, skip=(12,))
    series = dicom.ingest(tmp_path / "scan", "S01-D00")
    assert series["status"] == "excluded"
    (reason,) = series["reasons"]
    gap = f"between {named(tmp_path / 'scan', 'IM0011.dcm')} and"
    assert "1 slice(s) missing" in reason and gap in reason and "5.00 mm" in reason
    assert ".dcm" not in reason
    with pytest.raises(ScanExcluded, match="missing") as raised:
        dicom.ingest(tmp_path / "scan", "S01-D00", strict=True)
    assert str(raised.value).count("S01-D00") == 1
    with pytest.raises(ScanExcluded):
        dicom.read_volume(tmp_path / "scan", series)


def test_uneven_spacing_is_an_error(tmp_path, truth):
    def shift(ds, k):
        if k >= 10:
            ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], ds.ImagePositionPatient[2] + 1.0]

    write_stack(tmp_path / "scan", truth, edit=shift)
    issues = dicom.check_series(
        dicom.index_folder(tmp_path / "scan"),
        dicom.choose_series(dicom.index_folder(tmp_path / "scan")).files,
        scan_id="S1",
    )
    assert [i.code for i in issues] == ["uneven_spacing"]
    assert "3.50 mm apart; expected 2.50 mm" in issues[0].message


def test_duplicate_position_and_duplicate_copy(tmp_path, truth):
    folder = tmp_path / "scan"
    write_stack(folder, truth)
    ds = pydicom.dcmread(folder / "IM0005.dcm")
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(folder / "extra.dcm")
    index = dicom.index_folder(folder)
    choice = dicom.choose_series(index)
    issues = dicom.check_series(index, choice.files, scan_id="S1")
    assert any(
        i.code == "duplicate_position" and "IM0005.dcm" in i.message and "extra.dcm" in i.message for i in issues
    )
    (folder / "extra.dcm").unlink()
    (folder / "copy.dcm").write_bytes((folder / "IM0005.dcm").read_bytes())
    index = dicom.index_folder(folder)
    choice = dicom.choose_series(index)
    assert len(choice.files) == 25 and "copy.dcm" not in choice.files
    issues = dicom.check_series(index, choice.files, scan_id="S1")
    assert [(i.code, i.severity) for i in issues] == [("duplicate_file", "warning")]
    issues = dicom.check_series(index, [*choice.files, "copy.dcm"], scan_id="S1")
    assert [(i.code, i.severity) for i in issues] == [("duplicate_file", "error")]


def test_mixed_matrix_is_reported(tmp_path, truth):
    folder = tmp_path / "scan"
    write_stack(folder, truth)
    ds = pydicom.dcmread(folder / "IM0007.dcm")
    set_pixels(ds, np.zeros((16, 16)))
    ds.save_as(folder / "IM0007.dcm")
    series = dicom.ingest(folder, "S1")
    assert series["status"] == "excluded"
    text = " ".join(series["reasons"] + series["warnings"])
    odd = f"{named(folder, 'IM0007.dcm')} (16x16)"
    assert "mixed matrix" in text and odd in text and "expected 24x32" in text
    assert "missing" in text  # the odd slice is set aside, leaving a gap


def test_mixed_orientation_in_one_series(tmp_path, truth):
    folder = tmp_path / "scan"
    write_stack(folder, truth)
    ds = pydicom.dcmread(folder / "IM0003.dcm")
    ds.SOPInstanceUID = generate_uid()
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.save_as(folder / "coronal.dcm")
    index = dicom.index_folder(folder)
    choice = dicom.choose_series(index)
    assert len(choice.files) == 25 and len(choice.candidates) == 2
    issues = dicom.check_series(index, choice.files, scan_id="S1")
    assert [(i.code, i.severity) for i in issues] == [("mixed_orientation", "warning")]
    assert "coronal.dcm (1\\0\\0\\0\\0\\-1); expected 1\\0\\0\\0\\1\\0" in issues[0].message
    issues = dicom.check_series(index, [*choice.files, "coronal.dcm"], scan_id="S1")
    assert ("mixed_orientation", "error") in [(i.code, i.severity) for i in issues]


def test_gantry_tilt_tag_on_orthogonal_stack_warns(tmp_path, truth):
    def add_tag(ds, k):
        ds["GantryDetectorTilt"] = pydicom.DataElement(0x00181120, "DS", "-7.0")

    write_stack(tmp_path / "scan", truth, edit=add_tag)
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "ok"
    assert series["geometry"]["spacing"][0] == pytest.approx(2.5)
    assert "GantryDetectorTilt is 7 degrees" in series["warnings"][0]


def test_non_ct_modality_is_excluded(tmp_path, truth):
    def mr(ds, k):
        ds.Modality = "MR"
        ds.SOPClassUID = MR_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE

    write_stack(tmp_path / "scan", truth, edit=mr)
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "excluded"
    assert "modality MR, not CT" in series["reasons"][0]
    index = dicom.index_folder(tmp_path / "scan")
    issues = dicom.check_series(index, list(index["path"]), scan_id="S1")
    assert any(i.code == "non_ct" and "expected CT" in i.message for i in issues)


def test_truncated_copy_of_an_image_is_ignored(tmp_path, truth):
    folder = tmp_path / "scan"
    write_stack(folder, truth)
    (folder / "copy.dcm").write_bytes((folder / "IM0010.dcm").read_bytes()[:-100])
    series = dicom.ingest(folder, "S1-D7")
    assert series["status"] == "ok", series["reasons"]
    assert any(w.startswith("truncated") and "outside the series ignored" in w for w in series["warnings"])


def test_thick_slices_measured_with_a_warning_up_to_the_limit(tmp_path, truth):
    """Routine 5-10 mm reconstructions are chest CT too: measured, with the partial volume named in a warning;
    thicker than ``max_slice_thickness_mm`` (default 10 mm) is excluded."""
    write_stack(tmp_path / "eight", truth, spacing=(8.0, 0.7, 0.7))
    series = dicom.ingest(tmp_path / "eight", "S1")
    assert series["status"] == "ok"
    assert len(series["warnings"]) == 1 and "slices 8 mm thick, more than 5 mm" in series["warnings"][0]
    assert "partial volume" in series["warnings"][0]
    assert dicom.ingest(tmp_path / "eight", "S1", warn_slice_thickness_mm=8.0)["warnings"] == []
    limited = dicom.ingest(tmp_path / "eight", "S1", max_slice_thickness_mm=5.0)
    assert limited["status"] == "excluded" and "more than 5 mm" in limited["reasons"][0]
    with pytest.raises(InputError, match="warn_slice_thickness_mm is 12 mm, above max_slice_thickness_mm"):
        dicom.ingest(tmp_path / "eight", "S1", warn_slice_thickness_mm=12.0, max_slice_thickness_mm=10.0)
    write_stack(tmp_path / "twelve", truth, spacing=(12.0, 0.7, 0.7))
    thick = dicom.ingest(tmp_path / "twelve", "S1")
    assert thick["status"] == "excluded" and "12 mm thick, more than 10 mm" in thick["reasons"][0]
