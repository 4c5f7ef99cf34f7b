"""Tests for lungtrial.imaging.dicom._pixels: stored pixel values to HU (sign, rescale, LUT, padding, compression)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000Lossless, RLELossless

from lungtrial.imaging import dicom
from lungtrial.errors import InputError

from dicom_files import named, truth_volume, write_stack


@pytest.mark.parametrize(("signed", "intercept"), [(True, -1024.0), (False, -1024.0), (False, -2048.0), (True, 0.0)])
def test_signed_unsigned_and_intercepts_give_identical_hu(tmp_path, truth, signed, intercept):
    write_stack(tmp_path / "scan", truth, signed=signed, intercept=intercept)
    series = dicom.ingest(tmp_path / "scan", "S1")
    np.testing.assert_array_equal(dicom.read_volume(tmp_path / "scan", series).hu, truth)


def test_padding_value_and_out_of_field_values(tmp_path, truth):
    def pad(ds, k):
        stored = np.frombuffer(ds.PixelData, np.int16).reshape(ds.Rows, ds.Columns).copy()
        stored[0, :4] = -2000  # PixelPaddingValue
        stored[-1, -3:] = -2000 - 1024  # -3024 HU after intercept, outside the field of view
        ds.PixelData = stored.tobytes()
        ds["PixelPaddingValue"] = pydicom.DataElement(0x00280120, "SS", -2000)

    write_stack(tmp_path / "scan", truth, edit=pad)
    series = dicom.ingest(tmp_path / "scan", "S1")
    vol = dicom.read_volume(tmp_path / "scan", series)
    assert vol.padding is not None and vol.padding.sum() == 25 * 7
    assert (vol.hu[vol.padding] == -1024).all()
    np.testing.assert_array_equal(vol.hu[~vol.padding], truth[~vol.padding])
    assert vol.padding[:, 0, :4].all()  # row 0 is anterior: y index 0 after reorientation
    lean = dicom.read_volume(tmp_path / "scan", series, padding_mask=False)
    assert lean.padding is None
    np.testing.assert_array_equal(lean.hu, vol.hu)


def test_modality_lut_sequence_without_intercept(tmp_path, truth):
    def lut(ds, k):
        stored = np.frombuffer(ds.PixelData, np.int16)  # truth + 1024, all positive
        ds.PixelRepresentation = 0
        ds.PixelData = stored.astype(np.uint16).tobytes()
        del ds.RescaleIntercept, ds.RescaleSlope
        item = Dataset()
        item.LUTDescriptor = [4096, 0, 16]
        item.ModalityLUTType = "US"
        item["LUTData"] = pydicom.DataElement(0x00283006, "OW", (2 * np.arange(4096)).astype(np.uint16).tobytes())
        ds.ModalityLUTSequence = Sequence([item])

    write_stack(tmp_path / "scan", truth, intercept=-1024.0, edit=lut)
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["geometry"]["rescale"]["modality_lut_sequence"]
    np.testing.assert_array_equal(dicom.read_volume(tmp_path / "scan", series).hu, 2 * (truth + 1024))


def test_rle_and_jpeg2000_compressed(tmp_path):
    truth = truth_volume((25, 32, 40))  # the J2K encoder's 6 resolutions need at least 32 pixels a side

    def rle(ds, k):
        ds.compress(RLELossless, encoding_plugin="pydicom")

    def j2k(ds, k):
        ds.compress(JPEG2000Lossless)

    write_stack(tmp_path / "rle", truth, edit=rle)
    write_stack(tmp_path / "j2k", truth, edit=j2k)
    for name in ("rle", "j2k"):
        series = dicom.ingest(tmp_path / name, "S1")
        assert series["status"] == "ok", series["reasons"]
        np.testing.assert_array_equal(dicom.read_volume(tmp_path / name, series).hu, truth)
    assert "JPEG 2000" in dicom.ingest(tmp_path / "j2k", "S1")["geometry"]["transfer_syntax"][0]


def test_jpeg2000_codestream_unsigned_while_pixel_representation_signed(tmp_path):
    truth = truth_volume((25, 32, 40))

    def j2k_unsigned(ds, k):
        signed = np.frombuffer(ds.PixelData, np.int16).reshape(ds.Rows, ds.Columns)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.compress(JPEG2000Lossless, (signed.view(np.uint16) & 0x0FFF))  # 12-bit two's complement, unsigned
        ds.PixelRepresentation = 1  # the dataset says signed, the codestream unsigned

    write_stack(tmp_path / "scan", truth, intercept=0.0, edit=j2k_unsigned)
    series = dicom.ingest(tmp_path / "scan", "S1")
    np.testing.assert_array_equal(dicom.read_volume(tmp_path / "scan", series).hu, truth)


def test_undecodable_pixels_raise_input_error_naming_file(tmp_path, truth):
    def broken(ds, k):
        ds.compress(RLELossless, encoding_plugin="pydicom")
        if k == 3:
            ds.PixelData = ds.PixelData[:40] + bytes(len(ds.PixelData) - 40)

    write_stack(tmp_path / "scan", truth, edit=broken)
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["status"] == "ok"
    with pytest.raises(InputError, match=rf"^{named(tmp_path / 'scan', 'IM0003.dcm')}: "):
        dicom.read_volume(tmp_path / "scan", series)


def test_bits_stored_12_signed_and_unsigned_with_overlay_bits(tmp_path, truth):
    def signed12(ds, k):
        ds.BitsStored, ds.HighBit = 12, 11
        stored = np.frombuffer(ds.PixelData, np.int16)
        ds.PixelData = (stored.view(np.uint16) & 0x0FFF).tobytes()  # not sign-extended above bit 11

    def unsigned12(ds, k):
        ds.BitsStored, ds.HighBit = 12, 11
        ds.PixelData = (np.frombuffer(ds.PixelData, np.uint16) | 0x8000).tobytes()  # bit 15 is not pixel data

    write_stack(tmp_path / "s", truth, intercept=0.0, edit=signed12)
    write_stack(tmp_path / "u", truth, signed=False, intercept=-1024.0, edit=unsigned12)
    for name in ("s", "u"):
        series = dicom.ingest(tmp_path / name, "S1")
        np.testing.assert_array_equal(dicom.read_volume(tmp_path / name, series).hu, truth)


def test_rescale_slope_other_than_one(tmp_path, truth):
    def half(ds, k):
        stored = np.frombuffer(ds.PixelData, np.int16).astype(np.int32)  # HU + 1024
        ds.PixelData = (2 * stored).astype(np.int16).tobytes()
        ds.RescaleSlope = 0.5

    write_stack(tmp_path / "scan", truth, edit=half)
    series = dicom.ingest(tmp_path / "scan", "S1")
    assert series["geometry"]["rescale"]["pairs"] == [[0.5, -1024.0]]
    np.testing.assert_array_equal(dicom.read_volume(tmp_path / "scan", series).hu, truth)
