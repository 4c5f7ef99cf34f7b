"""Tests for lungtrial.imaging.dicom._rawheader: plain header values decoded from their bytes, everything else left
to pydicom; the decoded values equal what pydicom's conversion gives through :func:`._values._get`."""

from __future__ import annotations

import struct
from io import BytesIO

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from lungtrial.imaging.dicom import _rawheader, _values


def raw(vr, value: bytes | None, *, little: bool = True, tag: int = 0x00280030) -> RawDataElement:
    return RawDataElement(tag, vr, 0 if value is None else len(value), value, 0, vr is None, little)


def test_ascii_values_are_text_without_padding():
    assert _rawheader.decode(raw("DS", b"0.703125\\0.703125 "), "DS") == "0.703125\\0.703125"
    assert _rawheader.decode(raw("UI", b"1.2.840.10008.1.2.1\0"), "UI") == "1.2.840.10008.1.2.1"
    assert _rawheader.decode(raw("CS", b"  "), "CS") is None  # only padding: empty


def test_implicit_vr_takes_the_dictionary_vr():
    assert _rawheader.decode(raw(None, b"-1024 "), "IS") == "-1024"
    assert _rawheader.decode(raw(None, struct.pack("<H", 512)), "US") == 512


@pytest.mark.parametrize("little", [True, False])
def test_binary_integers_single_and_multiple(little):
    order = "<" if little else ">"
    assert _rawheader.decode(raw("US", struct.pack(order + "H", 16), little=little), "US") == 16
    assert _rawheader.decode(raw("SS", struct.pack(order + "h", -2000), little=little), "SS") == -2000
    assert _rawheader.decode(raw("UL", struct.pack(order + "2I", 7, 70000), little=little), "UL") == [7, 70000]
    assert _rawheader.decode(raw("SL", b"", little=little), "SL") is None


def test_what_is_left_to_pydicom():
    und = _rawheader.UNDECODED
    assert _rawheader.decode(raw("PN", b"Doe^Jane"), "PN") is und  # not a plain ASCII VR
    assert _rawheader.decode(raw("FD", struct.pack("<d", 1.5)), "FD") is und
    assert _rawheader.decode(raw("US", b"\1\2\3"), "US") is und  # not a whole number of values
    assert _rawheader.decode(raw("US or SS", b"\1\0"), "US or SS") is und  # ambiguous VR
    assert _rawheader.decode(raw("DS", None), "DS") is und  # deferred value
    assert _rawheader.decode(pydicom.DataElement(0x00280030, "DS", "0.5\\0.5"), "DS") is und  # already converted


def test_switched_off(monkeypatch):
    monkeypatch.setattr(_rawheader, "ENABLED", False)
    assert _rawheader.decode(raw("DS", b"1.5"), "DS") is _rawheader.UNDECODED


def test_values_read_from_bytes_as_through_pydicom(monkeypatch):
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "1.2.3.5"
    ds.SOPClassUID = CTImageStorage
    ds.PixelSpacing = [0.703125, 0.703125]
    ds.Rows, ds.SmallestImagePixelValue = 512, -1024
    ds.SeriesInstanceUID = "1.2.3.4"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.add_new(0x00280106, "SS", -1024)
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    keys = ("PixelSpacing", "Rows", "SeriesInstanceUID", "ImageType", "SmallestImagePixelValue")

    def read_all():
        read = pydicom.dcmread(BytesIO(buf.getvalue()))
        return {k: _values._get(read, k) for k in keys}

    fast = read_all()
    monkeypatch.setattr(_rawheader, "ENABLED", False)
    slow = read_all()
    assert fast["Rows"] == 512 and fast["SeriesInstanceUID"] == "1.2.3.4"
    assert fast["PixelSpacing"] == "0.703125\\0.703125" and fast["SmallestImagePixelValue"] == -1024
    for k in keys:  # pydicom's values, as the _values helpers compare them
        s = slow[k]
        if isinstance(s, (list, pydicom.multival.MultiValue)):
            assert fast[k].split("\\") == [str(v) for v in s], k
        else:
            assert str(fast[k]) == str(s), k
