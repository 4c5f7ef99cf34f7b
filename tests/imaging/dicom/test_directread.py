"""Tests for lungtrial.imaging.dicom._directread: pixel data read at the offset the index recorded."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from lungtrial.imaging import dicom
from lungtrial.errors import InputError

from dicom_files import write_stack


def test_indexed_read_skips_the_second_header_parse_and_rechecks_files(tmp_path, truth, read_both_ways, monkeypatch):
    read_volume = read_both_ways  # the plain function
    folder = tmp_path / "scan"
    write_stack(folder, truth, row=(-1, 0, 0), signed=False, edit=lambda ds, k: setattr(ds, "PixelPaddingValue", 0))
    index = dicom.index_folder(folder)
    assert index["pixel_offset"].notna().all() and (index["file_size"] > index["pixel_offset"]).all()
    series = dicom.ingest(folder, "S01-D00", index=index)
    assert series == dicom.ingest(folder, "S01-D00")
    parsed = []
    original = dicom._volume._read_frames
    monkeypatch.setattr(dicom._volume, "_read_frames", lambda *a: parsed.append(a[1]) or original(*a))
    np.testing.assert_array_equal(read_volume(folder, series, index=index).hu, truth)
    assert parsed == []
    # a file rewritten after indexing (other size) is read through pydicom again, with its own checks
    victim = index.set_index("label").at[series["files"][3], "path"]
    ds = pydicom.dcmread(folder / victim)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.save_as(folder / victim)
    with pytest.raises(InputError, match=f"^{series['files'][3]}: "):
        read_volume(folder, series, index=index)
    assert parsed == [series["files"][3]]


def test_odd_pixel_modules_are_not_read_directly(tmp_path, truth):
    def edit(ds, k):
        if k == 1:
            ds.HighBit = 14  # stored bits not at the bottom of the word
        if k == 2:
            ds.BitsAllocated = 8
        if k == 3:
            ds.PixelPaddingValue = [0, 1]  # two values: left to the general reader (and its error)
        if k == 4:
            ds.SharedFunctionalGroupsSequence = Sequence([Dataset()])

    write_stack(tmp_path / "scan", truth, edit=edit)
    index = dicom.index_folder(tmp_path / "scan")
    direct = index.set_index("path")["pixel_offset"].notna()
    assert not direct.iloc[1:5].any() and direct.iloc[[0, *range(5, len(direct))]].all()
