"""Tests for lungtrial.imaging.dicom._series: the choice of one axial CT sub-series in a folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from lungtrial.imaging import dicom

from dicom_files import new_ds, no_identifiers, set_pixels, write_stack


def test_too_few_slices(tmp_path, truth):
    write_stack(tmp_path / "scan", truth[:8])
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "excluded"
    assert "8 slices, fewer than 20" in series["reasons"][0]
    assert dicom.ingest(tmp_path / "scan", "S1", min_slices=5)["status"] == "ok"


def _localizer(folder) -> None:
    ds = new_ds(series_uid="1.2.826.0.1.3680043.2.9")
    ds.SeriesNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImagePositionPatient = [0, -100, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.PixelSpacing = [1, 1]
    set_pixels(ds, np.zeros((32, 32)))
    ds.save_as(folder / "loc.dcm", enforce_file_format=True)


def _dose_screen(folder) -> None:
    ds = new_ds(sop_class=SecondaryCaptureImageStorage, series_uid="1.2.826.0.1.3680043.2.8", modality="OT")
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 8, 8, 3, "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.PlanarConfiguration = 8, 8, 7, 0, 0
    ds.PixelData = bytes(8 * 8 * 3)
    ds.save_as(folder / "dose.dcm", enforce_file_format=True)


def _dicomdir(folder) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = "TRIAL"
    ds.DirectoryRecordSequence = Sequence()
    ds.save_as(folder / "DICOMDIR", enforce_file_format=True)


def test_localizer_thick_series_and_other_files(tmp_path, truth):
    folder = tmp_path / "study"
    write_stack(folder / "thin", truth, names=[f"a{k}" for k in range(25)])
    write_stack(
        folder / "thick",
        np.repeat(truth, 2, axis=0)[:25],
        spacing=(5.0, 0.7, 0.7),
        series_uid="1.2.826.0.1.3680043.2.2",
        edit=lambda ds, k: setattr(ds, "SeriesNumber", 3),
    )
    _localizer(folder)
    _dose_screen(folder)
    _dicomdir(folder)
    (folder / "notes.txt").write_text("not dicom\n")
    index = dicom.index_folder(folder)
    assert len(index) == 54
    by_path = index.set_index("path")
    assert not by_path.at["notes.txt", "is_dicom"] and not by_path.at["notes.txt", "is_image"]
    assert by_path.at["DICOMDIR", "readable"] and not by_path.at["DICOMDIR", "is_image"]
    assert by_path.at["dose.dcm", "is_image"] and by_path.at["dose.dcm", "photometric"] == "RGB"
    assert by_path.at["thin/a0", "sop_class"] == "CT Image Storage"
    assert len(by_path.at["thin/a0", "series"]) == 12
    no_identifiers(index.astype(str).to_dict("records"))

    choice = dicom.choose_series(index)
    assert choice.files[0].startswith("thin/") and len(choice.files) == 25
    assert "2.5 mm" in choice.reason and "thinnest" in choice.reason
    cands = choice.candidates.set_index("series_number")
    assert "localizer" in cands.at[1, "why_not"]
    assert "not grey-scale" in cands.loc[cands["n_files"] == 1].query("modality == 'OT'")["why_not"].iloc[0]
    assert bool(cands.at[3, "eligible"])
    most = dicom.choose_series(index, prefer="most_slices", max_slice_thickness_mm=5.0)
    assert most.series == choice.series  # 25 slices each: thinnest breaks the tie
    none_thin = dicom.choose_series(index, prefer_kernels=["B70f"], max_slice_thickness_mm=2.0)
    assert none_thin.series is None and "more than 2 mm" in none_thin.reason

    series = dicom.ingest(folder, "S1")
    assert series["status"] == "ok" and series["warnings"] == []
    assert series["reason"] == choice.reason and series["series"] == choice.series
    assert "set aside: series 1 (localizer" in series["reason"]
    no_identifiers(series)


def test_one_uid_two_overlapping_acquisitions_split_into_subseries(tmp_path, truth):
    folder = tmp_path / "scan"
    write_stack(folder, truth, names=[f"a{k}.dcm" for k in range(25)])
    write_stack(
        folder, truth, names=[f"b{k}.dcm" for k in range(25)], edit=lambda ds, k: setattr(ds, "AcquisitionNumber", 2)
    )
    choice = dicom.choose_series(dicom.index_folder(folder))
    assert len(choice.candidates) == 2 and choice.candidates["eligible"].all()
    assert choice.series.endswith(".1") and all(f.startswith("a") for f in choice.files)
    assert dicom.ingest(folder, "S1")["status"] == "ok"


def test_sequential_acquisitions_stay_one_series(tmp_path, truth):
    write_stack(tmp_path / "scan", truth, edit=lambda ds, k: setattr(ds, "AcquisitionNumber", k // 4 + 1))
    choice = dicom.choose_series(dicom.index_folder(tmp_path / "scan"))
    assert len(choice.candidates) == 1 and len(choice.files) == 25


@pytest.mark.parametrize(
    ("tag", "value", "what"),
    [("PatientID", "OTHER-ID-456", "2 patients (PatientID differs)"), ("StudyInstanceUID", "1.2.3.4.5", "2 studies")],
)
def test_two_patients_or_studies_in_one_folder_exclude_the_scan(tmp_path, truth, tag, value, what):
    """Another patient's (or another visit's) series copied into the scan's folder is not chosen silently."""
    write_stack(tmp_path / "scan", truth, edit=lambda ds, k: setattr(ds, "StudyInstanceUID", "1.2.3.4.4"))
    names = [f"zz{k:04d}.dcm" for k in range(truth.shape[0])]
    write_stack(
        tmp_path / "scan", truth, spacing=(2.0, 0.7, 0.7), series_uid="1.2.826.0.1.3680043.2.9", names=names,
        edit=lambda ds, k: setattr(ds, tag, value),
    )
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "excluded"
    assert f"images of {what}" in series["reasons"][0]
    assert value not in json.dumps(series)
    no_identifiers(series)


def test_a_file_without_patient_id_or_another_studys_localizer_does_not_mix_a_folder(tmp_path, truth):
    """Only the qualifying series count, and only images that carry the tag."""
    write_stack(tmp_path / "scan", truth, edit=lambda ds, k: delattr(ds, "PatientID") if k == 3 else None)
    names = [f"zz{k:04d}.dcm" for k in range(3)]
    write_stack(  # three slices of another study: no qualifying series
        tmp_path / "scan", truth[:3], series_uid="1.2.826.0.1.3680043.2.9", names=names,
        edit=lambda ds, k: setattr(ds, "StudyInstanceUID", "1.2.3.4.5"),
    )
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "ok", series["reasons"]
