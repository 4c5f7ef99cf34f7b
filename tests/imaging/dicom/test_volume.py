"""Tests for lungtrial.imaging.dicom._volume: the series read into one volume, file numbers and patient keys."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RLELossless

from lungtrial.imaging import dicom

from dicom_files import SECRET, new_ds, no_identifiers, set_pixels, write_stack


def test_demo_writer_series_round_trip(tmp_path):
    from lungtrial.demo.dicomwrite import write_series

    rng = np.random.default_rng(1)
    hu = rng.integers(-1000, 1500, (22, 40, 36)).astype(np.int16)
    write_series(
        hu,
        (1.25, 0.8, 0.75),
        tmp_path,
        origin=(5.0, -7.0, 30.0),
        signed=False,
        padding_value=0,
        fov_diameter_mm=30.0,
        superior_first=False,
        patient={"PatientName": SECRET},
        file_names="hex",
        suffix="",
    )
    series = dicom.ingest(tmp_path, "S1")
    assert series["status"] == "ok", series["reasons"]
    no_identifiers(series)
    vol = dicom.read_volume(tmp_path, series)
    assert vol.spacing == pytest.approx((1.25, 0.8, 0.75))
    assert vol.origin == pytest.approx((5.0, -7.0, 30.0))
    assert vol.padding is not None and vol.padding[:, 0, 0].all() and not vol.padding[:, 20, 18].any()
    np.testing.assert_array_equal(vol.hu[~vol.padding], hu[~vol.padding])


def _enhanced_ct(path, hu: np.ndarray, order: list[int], *, spacing=(2.5, 0.7, 0.7), origin=(-10.0, -20.0, -100.0)):
    """An Enhanced CT object holding the LPS-ordered volume ``hu`` with its frames in ``order``."""
    ds = new_ds(sop_class="1.2.840.10008.5.1.4.1.1.2.1")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.NumberOfFrames = len(order)
    shared = Dataset()
    orient, measures, rescale = Dataset(), Dataset(), Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [spacing[1], spacing[2]]
    measures.SliceThickness = spacing[0]
    rescale.RescaleIntercept, rescale.RescaleSlope, rescale.RescaleType = -1024, 1, "HU"
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PixelValueTransformationSequence = Sequence([rescale])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    items = []
    for z in order:
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = [origin[0], origin[1], origin[2] + z * spacing[0]]
        item.PlanePositionSequence = Sequence([position])
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    set_pixels(ds, (hu[order].astype(np.int32) + 1024).reshape(-1, hu.shape[2]), intercept=None)
    ds.Rows, ds.Columns = hu.shape[1:]
    ds.save_as(path, enforce_file_format=True)
    return ds


@pytest.mark.parametrize("compressed", [False, True], ids=["native", "rle"])
def test_enhanced_ct_frames_are_ordered_by_position(tmp_path, truth, compressed):
    order = random.Random(5).sample(range(truth.shape[0]), truth.shape[0])
    ds = _enhanced_ct(tmp_path / "enhanced.dcm", truth, order)
    if compressed:
        ds.compress(RLELossless, encoding_plugin="pydicom")
        ds.save_as(tmp_path / "enhanced.dcm")
    index = dicom.index_folder(tmp_path)
    assert len(index) == 25 and (index["file"] == "enhanced.dcm").all()
    series = dicom.ingest(tmp_path, "S1")
    assert series["status"] == "ok", series["reasons"]
    assert series["files"][0] == f"file 1 frame {order.index(0) + 1}"
    vol = dicom.read_volume(tmp_path, series)
    np.testing.assert_array_equal(vol.hu, truth)
    assert vol.spacing == pytest.approx((2.5, 0.7, 0.7))


def test_file_numbers_resolve_through_the_index_when_a_file_gave_no_row(tmp_path, truth):
    """Labels number the folder's listing; a file without an index row must not shift the files after it."""
    folder = tmp_path / "scan"
    write_stack(folder, truth)
    index = dicom.index_folder(folder)
    labels = sorted(index["label"], key=lambda s: int(s.split()[1]))
    dropped = index[index["label"] != labels[0]]  # as if the first file had given no row
    full, partial = dicom._volume._resolver(folder, index), dicom._volume._resolver(folder, dropped)
    for label in labels[1:]:
        assert partial(label) == full(label)


def test_patient_key_tells_one_patient_from_another_and_shows_no_id(tmp_path, truth):
    """Keys of the chosen series' PatientID: equal for one patient, different for two, never the ID itself."""
    write_stack(tmp_path / "a", truth)
    write_stack(tmp_path / "b", truth, series_uid="1.2.826.0.1.3680043.2.7")
    write_stack(tmp_path / "c", truth, edit=lambda ds, k: setattr(ds, "PatientID", "OTHER-ID-456"))
    key = {name: dicom.patient_key(tmp_path / name, dicom.ingest(tmp_path / name, name)) for name in "abc"}
    assert key["a"] == key["b"] != key["c"] and None not in key.values()
    assert all("SECRET" not in k and "OTHER" not in k and "123" not in k for k in key.values())
    assert dicom.patient_key(tmp_path / "a", {"files": []}) is None
