"""Datasets and values as every step reads them: a file's chosen elements (:func:`_dcmread`), one element of a
dataset (:func:`_get`) or of a functional group macro (:func:`_functional_group`), and single or multiple values
as plain floats, ints and text."""

from __future__ import annotations

import functools
import math
import re
import warnings
from typing import BinaryIO

import pandas as pd
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from . import _rawheader


def _values(value) -> list:
    """A DICOM value as a list (single values, multi-values and backslash-separated strings)."""
    if value is None:
        return []
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace").strip(" \0")
    if isinstance(value, str):
        return [v for v in value.split("\\") if v.strip()]
    if hasattr(value, "__iter__"):
        return list(value)
    return [value]


def _floats(value, n: int) -> tuple[float, ...] | None:
    """``n`` floats from a multi-valued DICOM element, or None when absent or malformed."""
    try:
        out = tuple(float(str(v).strip()) for v in _values(value))
    except ValueError:
        return None
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def _float(value) -> float | None:
    """A float from a DICOM value or a signed string such as ``"+18.5"``; None when absent or malformed."""
    values = _values(value)
    if not values:
        return None
    try:
        out = float(str(values[0]).strip())
    except ValueError:
        return None
    return out if math.isfinite(out) else None


def _int(value) -> int | None:
    out = _float(value)
    return None if out is None else int(out)


def _text(value) -> str | None:
    values = _values(value)
    return "\\".join(str(v).strip() for v in values) if values else None


def _finite(value, default: float) -> float:
    """``value`` as a float, ``default`` when it is None or NaN."""
    return default if value is None or pd.isna(value) else float(value)


def _or(value, default):
    return default if value is None else value


@functools.cache
def _tag_vr(keyword: str) -> tuple[int, str]:
    tag = tag_for_keyword(keyword)
    return tag, dictionary_VR(tag)


def _get(ds: pydicom.Dataset, keyword: str):
    """The value of ``keyword``, or its raw bytes when pydicom cannot convert it; None when absent.

    Plain ASCII and binary integer values not yet converted come from :func:`._rawheader.decode`; everything else
    through pydicom.
    """
    tag, dict_vr = _tag_vr(keyword)
    elem = ds.get_item(tag, keep_deferred=True)
    if elem is None:
        return None
    value = _rawheader.decode(elem, dict_vr)
    if value is not _rawheader.UNDECODED:
        return value
    try:
        return ds.get(keyword)
    except Exception:  # noqa: BLE001 - malformed value: fall back to the raw bytes
        elem = ds.get_item(keyword)
        return None if elem is None else elem.value


def _functional_group(ds: pydicom.Dataset, item: pydicom.Dataset | None, sequence: str, keyword: str):
    """``keyword`` of a functional group macro ``sequence``, per-frame ``item`` first, then the shared groups."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    for group in (item, shared[0] if shared else None):
        if group is not None and sequence in group and len(group[sequence].value) and keyword in group[sequence][0]:
            return _get(group[sequence][0], keyword)
    return None


def _dcmread(fp: BinaryIO, tags: list[str], defer_size: int) -> tuple[pydicom.Dataset, bool]:
    """Read ``tags`` of a DICOM file, large values deferred; return the dataset and whether the file ended
    early (pydicom only warns). Files without the 128-byte preamble and file meta are accepted when they parse
    into an object with a valid SOPClassUID."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(fp, defer_size=defer_size, specific_tags=tags)
        except InvalidDicomError:
            fp.seek(0)
            try:
                ds = pydicom.dcmread(fp, defer_size=defer_size, specific_tags=[*tags, "SOPClassUID"], force=True)
                sop = UID(str(ds.get("SOPClassUID", "")))
            except Exception:  # noqa: BLE001 - whatever the parser makes of it, it is not DICOM
                raise InvalidDicomError("no DICOM preamble and not parseable as a DICOM dataset") from None
            if not sop.is_valid or not sop:
                raise InvalidDicomError("no DICOM preamble and no valid SOPClassUID") from None
            if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
                implicit, little = ds.original_encoding
                ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = (
                    ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
                )
    ended_early = any("end of file" in str(w.message).lower() for w in caught)
    return ds, ended_early


# ConvolutionKernel is free text (VR SH): shown in outputs only when it reads as a reconstruction kernel's name in
# one of the vendors' conventions, so that nothing typed into the tag (a name, an ID) can leave through it.
_KERNEL_CODE = re.compile(
    r"[A-Z][a-z]?\d{2}[a-z]?"  # Siemens: B30f, Br40d, I70f, Qr40
    r"|F[CL]\d{2}(-[A-Z])?"  # Canon / Toshiba: FC13, FL04, FC13-H
    r"|[A-EL]|Y[A-D]|U[A-C]|[A-E]C"  # Philips: B, C, L, YA, YC, UB, EC
)
_KERNEL_WORD = re.compile(  # GE and descriptive names, any case
    r"(STANDARD|SOFT|LUNG|BONE|BONEPLUS|DETAIL|CHEST|EDGE|ULTRA|SMOOTH|SHARP|BODY|MEDIASTINUM)"
    r"( ?(PLUS|ENHANCED|SHARP|SMOOTH|HR|HD))?"
)
KERNEL_NOT_SHOWN = "not shown (free text)"


def _shown_kernel(kernel) -> str | None:
    """The ConvolutionKernel value as outputs show it: itself when every backslash-separated part is a kernel name
    of a vendor's convention (or a number, e.g. Siemens' strength), else :data:`KERNEL_NOT_SHOWN`; None if absent."""
    if kernel is None or (isinstance(kernel, float) and math.isnan(kernel)):
        return None
    text = str(kernel).strip()
    if not text:
        return None
    parts = [p.strip() for p in text.split("\\")]
    if all(_KERNEL_CODE.fullmatch(p) or _KERNEL_WORD.fullmatch(p.upper()) or p.isdigit() for p in parts):
        return text
    return KERNEL_NOT_SHOWN
