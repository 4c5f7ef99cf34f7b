"""Tests for lungtrial.imaging.dicom._geometry: slice order and the reoriented volume's geometry."""

from __future__ import annotations

import json
import random

import numpy as np
import pydicom
import pytest

from lungtrial.imaging import dicom

from dicom_files import no_identifiers, write_stack


def test_shuffled_names_and_lying_instance_numbers_are_ordered_by_position(tmp_path, truth):
    names = [f"{n:03d}" for n in random.Random(3).sample(range(100, 999), truth.shape[0])]
    write_stack(tmp_path / "scan", truth, names=names)
    series = dicom.ingest(tmp_path / "scan", "S01-D00")
    assert series["status"] == "ok", series["reasons"]
    json.dumps(series)
    no_identifiers(series)
    vol = dicom.read_volume(tmp_path / "scan", series)
    assert vol.hu.dtype == np.int16
    np.testing.assert_array_equal(vol.hu, truth)
    assert vol.spacing == pytest.approx((2.5, 0.7, 0.7))
    assert vol.origin == pytest.approx((-10.0, -20.0, -100.0))
    np.testing.assert_allclose(vol.direction, np.eye(3))
    assert vol.padding is None
    assert series["geometry"]["shape"] == list(truth.shape)


@pytest.mark.parametrize(
    ("row", "col"),
    [((-1, 0, 0), (0, 1, 0)), ((1, 0, 0), (0, -1, 0)), ((-1, 0, 0), (0, -1, 0)), ((0, 1, 0), (1, 0, 0))],
    ids=["x-flipped-feet-first", "y-flipped", "prone", "transposed-reversed-z"],
)
def test_any_orientation_gives_the_same_reoriented_volume(tmp_path, truth, row, col):
    write_stack(tmp_path / "scan", truth, row=row, col=col)
    series = dicom.ingest(tmp_path / "scan", "S01-D00")
    assert series["status"] == "ok", series["reasons"]
    vol = dicom.read_volume(tmp_path / "scan", series)
    np.testing.assert_array_equal(vol.hu, truth)
    assert vol.origin == pytest.approx((-10.0, -20.0, -100.0))
    np.testing.assert_allclose(vol.direction, np.eye(3), atol=1e-9)
    assert vol.spacing == pytest.approx((2.5, 0.7, 0.7))


@pytest.mark.parametrize("tag", ["+18.5", None], ids=["tag-and-orientation", "orientation-only"])
def test_gantry_tilt_spacing_is_projected_step(tmp_path, truth, tag):
    tilt = np.radians(18.5)
    col = (0.0, np.cos(tilt), -np.sin(tilt))  # detector tilted about x, table moves along z

    def add_tag(ds, k):
        if tag is not None:
            ds["GantryDetectorTilt"] = pydicom.DataElement(0x00181120, "DS", tag)

    folder = tmp_path / "scan"
    write_stack(folder, truth, col=col, step=(0, 0, 2.5), edit=add_tag)
    series = dicom.ingest(folder, "S1")
    assert series["status"] == "ok", series["reasons"]
    assert series["geometry"]["spacing"][0] == pytest.approx(2.5 * np.cos(tilt), rel=1e-4)
    assert series["geometry"]["tilt_deg"] == pytest.approx(18.5, abs=0.01)
    (warning,) = series["warnings"]
    assert "gantry tilt 18.5 degrees" in warning
    vol = dicom.read_volume(folder, series)
    assert vol.hu.shape == truth.shape
    assert vol.spacing[0] == pytest.approx(2.5 * np.cos(tilt), rel=1e-4)
