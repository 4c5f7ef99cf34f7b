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
# one of the vendors' conventions, so that nothing typed into the tag (a name, an ID, a date) can leave through it.
_KERNEL_CODE = re.compile(
    r"[A-Z][A-Za-z]?\d{2}[A-Za-z]?"  # Siemens: B30f, Br40d, I70f, Qr40, Hr38h, Bf37
    r"|[A-Z]{2}\d{2}"  # older Siemens: AB50
    r"|F[CL]\d{2}(-[A-Z])?"  # Canon / Toshiba: FC13, FL04, FC13-H
    r"|[A-Z]{1,2}|XCA|IMR\d"  # Philips: B, C, L, YA, YE, EB, UB, XCA, IMR1
)
#: Words of descriptive kernel names (GE STANDARD, HD LUNG; Canon Body Standard, AIDR 3D; United Imaging B_SOFT_B),
#: compared in capitals.
_KERNEL_WORDS = frozenset(
    "STANDARD STND STD SOFT LUNG LUNGS BONE BONEPLUS DETAIL CHEST EDGE ULTRA SMOOTH SHARP SHARPER BODY MEDIASTINUM "
    "MEDIASTINAL TISSUE PLUS ENHANCED HR HD HEAD BRAIN ABDOMEN AIDR AICE ADMIRE SAFIRE IDOSE ASIR ASIRV VEO KERNEL "
    "SOFTTISSUE 3D".split()
)
_KERNEL_SEPARATORS = re.compile(r"[ _]+")
KERNEL_NOT_SHOWN = "not shown (free text)"


def _kernel_part(part: str, allowed) -> bool:
    """Whether one backslash-separated value of ConvolutionKernel reads as a kernel's name: a vendor's code, or
    words of kernel names (single letters and one- or two-digit numbers among them), or a value the user listed."""
    if part in allowed or part.lower() in allowed:
        return True
    if _KERNEL_CODE.fullmatch(part):
        return True
    tokens = [t for t in _KERNEL_SEPARATORS.split(part.upper()) if t]

    def named(t: str) -> bool:
        return t in _KERNEL_WORDS or bool(_KERNEL_CODE.fullmatch(t))

    return any(named(t) for t in tokens) and all(named(t) or (t.isdigit() and len(t) <= 2) for t in tokens)


def _shown_kernel(kernel, allowed=()) -> str | None:
    """The ConvolutionKernel value as outputs show it: itself when its first backslash-separated value reads as a
    kernel's name (:func:`_kernel_part`; ``allowed``: names the user gave, e.g. ``prefer_kernels``, in any case) and
    the others too or are a one-digit strength (Siemens' ``Br40d\3``), else :data:`KERNEL_NOT_SHOWN`; None if absent."""
    if kernel is None or (isinstance(kernel, float) and math.isnan(kernel)):
        return None
    text = str(kernel).strip()
    if not text:
        return None
    allowed = {str(a).strip() for a in allowed} | {str(a).strip().lower() for a in allowed}
    if text in allowed or text.lower() in allowed:
        return text
    first, *rest = [p.strip() for p in text.split("\\")]
    if _kernel_part(first, allowed) and all((p.isdigit() and len(p) == 1) or _kernel_part(p, allowed) for p in rest):
        return text
    return KERNEL_NOT_SHOWN
