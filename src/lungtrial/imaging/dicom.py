"""DICOM ingest: header index, series choice, quality checks and volume reading in HU.

The chain is ``index_folder`` (headers only) -> ``choose_series`` (one axial CT sub-series, files ordered
along the slice normal) -> ``check_series`` (QC issues) -> ``ingest`` (the content of ``series.json``) ->
``read_volume`` (int16 HU array, reoriented so that x runs to the patient's left, y to posterior and z to
superior).

Inside the library files are keyed by their path relative to the scan folder; in everything that leaves it
(``series.json``, QC messages, exceptions) a file is named by its number, ``file N``: its position when the folder's
files are sorted by relative path (``/``-separated, by code point: ``find . -type f | LC_ALL=C sort``), because
file and folder names are often identifiers (a SOP Instance UID, a patient's name). Series are named by a short
hash of their SeriesInstanceUID. No patient identifier or UID is ever written to a result, a log or an exception
message. :func:`folder_fingerprint` tells cheaply (names, sizes and modification times, no file read) whether a
folder's content changed.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import re
import struct
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from lungtrial.errors import InputError, ScanExcluded
from lungtrial.memory import new_volume

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")
DICOMDIR_STORAGE = "1.2.840.10008.1.3.10"

#: Stored values that end up below this many HU after the modality LUT are scanner padding, not tissue
#: (air is about -1000 HU; padding is typically -2000 or -3024 HU).
PADDING_BELOW_HU = -1500.0
#: Value written into padding voxels: air.
PADDING_FILL_HU = -1024

_HEADER_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "Modality",
    "SeriesInstanceUID",
    "SeriesNumber",
    "AcquisitionNumber",
    "InstanceNumber",
    "ImageType",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "ConvolutionKernel",
    "GantryDetectorTilt",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "RescaleSlope",
    "RescaleIntercept",
    "ModalityLUTSequence",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
    "PixelData",
]

INDEX_COLUMNS = [
    "path",
    "file",
    "frame",
    "is_dicom",
    "readable",
    "error",
    "is_image",
    "sop_class",
    "modality",
    "series",
    "series_number",
    "acquisition_number",
    "instance_number",
    "instance",
    "image_type",
    "rows",
    "columns",
    "frames",
    "position",
    "orientation",
    "pixel_spacing",
    "slice_thickness",
    "kernel",
    "gantry_tilt",
    "transfer_syntax",
    "bits_allocated",
    "bits_stored",
    "pixel_representation",
    "samples_per_pixel",
    "photometric",
    "rescale_slope",
    "rescale_intercept",
    "modality_lut",
    "padding_value",
    "padding_limit",
    "file_size",
    "pixel_offset",
    "label",
]

#: How a file (and a frame of a multi-frame file) is named outside the library: by its number in the folder.
_LABEL = re.compile(r"^file (\d+)(?: frame (\d+))?$")


def _hash(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:12]


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


#: Value representations limited to the default (ASCII) repertoire: their raw bytes are the text.
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})
#: Binary integer value representations -> struct format of one value.
_INT_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}


@functools.cache
def _tag_vr(keyword: str) -> tuple[int, str]:
    tag = tag_for_keyword(keyword)
    return tag, dictionary_VR(tag)


def _or(value, default):
    return default if value is None else value


def _get(ds: pydicom.Dataset, keyword: str):
    """The value of ``keyword``, or its raw bytes when pydicom cannot convert it; None when absent.

    Elements not yet converted by pydicom whose value representation is plain ASCII (CS, DS, IS, UI, ...) or a
    binary integer (US, SS, UL, SL) are decoded here from their raw bytes: text (backslash-separated values,
    padding stripped) or an int (a list when multi-valued), as the ``_values`` helpers read them. Headers are
    indexed for every file of a scan, and this is several times faster than pydicom's general conversion.
    Everything else (other VRs, ambiguous VRs such as "US or SS", deferred values) goes through pydicom.
    """
    tag, dict_vr = _tag_vr(keyword)
    elem = ds.get_item(tag, keep_deferred=True)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement) and elem.value is not None:
        vr = elem.VR or dict_vr
        if vr in _ASCII_VRS:
            return elem.value.decode("ascii", "replace").strip(" \0") or None
        fmt = _INT_VRS.get(vr)
        if fmt is not None and len(elem.value) % struct.calcsize(fmt) == 0:
            values = struct.unpack(
                ("<" if elem.is_little_endian else ">") + fmt * (len(elem.value) // struct.calcsize(fmt)), elem.value
            )
            return None if not values else values[0] if len(values) == 1 else list(values)
    try:
        return ds.get(keyword)
    except Exception:  # noqa: BLE001 - malformed value: fall back to the raw bytes
        elem = ds.get_item(keyword)
        return None if elem is None else elem.value


def _empty_row(rel: str) -> dict:
    row = dict.fromkeys(INDEX_COLUMNS)
    row.update(path=rel, file=rel, is_dicom=False, readable=False, is_image=False, modality_lut=False)
    return row


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


def _index_file(path: Path, rel: str) -> list[dict]:
    """Index rows of one file: one row, or one per frame of a multi-frame object with functional groups."""
    row, ds = _file_row(path, rel)
    if ds is None or not row["is_image"] or "PerFrameFunctionalGroupsSequence" not in ds:
        return [row]
    return _frame_rows(ds, row)


def _functional_group(ds: pydicom.Dataset, item: pydicom.Dataset | None, sequence: str, keyword: str):
    """``keyword`` of a functional group macro ``sequence``, per-frame ``item`` first, then the shared groups."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    for group in (item, shared[0] if shared else None):
        if group is not None and sequence in group and len(group[sequence].value) and keyword in group[sequence][0]:
            return _get(group[sequence][0], keyword)
    return None


def _frame_rows(ds: pydicom.Dataset, row: dict) -> list[dict]:
    """One index row per frame of an enhanced (multi-frame) object; ``path`` is ``<file>#<frame number>``."""
    rows = []
    try:
        frames = list(ds.PerFrameFunctionalGroupsSequence)
    except Exception:  # noqa: BLE001 - a malformed sequence leaves the object unreadable
        return [row | {"readable": False, "error": "per-frame functional groups unreadable"}]
    for number, item in enumerate(frames, start=1):

        def group(sequence: str, keyword: str, item=item):
            return _functional_group(ds, item, sequence, keyword)

        slope = _float(group("PixelValueTransformationSequence", "RescaleSlope"))
        intercept = _float(group("PixelValueTransformationSequence", "RescaleIntercept"))
        acquisition = _int(group("FrameContentSequence", "FrameAcquisitionNumber"))
        rows.append(
            row
            | {
                "path": f"{row['file']}#{number}",
                "frame": number,
                "instance": None if row["instance"] is None else f"{row['instance']}#{number}",
                "position": _floats(group("PlanePositionSequence", "ImagePositionPatient"), 3),
                "orientation": _floats(group("PlaneOrientationSequence", "ImageOrientationPatient"), 6),
                "pixel_spacing": _floats(group("PixelMeasuresSequence", "PixelSpacing"), 2),
                "slice_thickness": _float(group("PixelMeasuresSequence", "SliceThickness")),
                "image_type": _text(group("CTImageFrameTypeSequence", "FrameType")) or row["image_type"],
                "kernel": _text(group("CTReconstructionSequence", "ConvolutionKernel")) or row["kernel"],
                "gantry_tilt": _float(group("CTAcquisitionDetailsSequence", "GantryDetectorTilt")),
                "acquisition_number": row["acquisition_number"] if acquisition is None else acquisition,
                "rescale_slope": row["rescale_slope"] if slope is None else slope,
                "rescale_intercept": row["rescale_intercept"] if intercept is None else intercept,
            }
        )
    return rows


def _file_row(path: Path, rel: str) -> tuple[dict, pydicom.Dataset | None]:
    row = _empty_row(rel)
    try:
        size = path.stat().st_size
    except OSError:  # a broken link, or a file removed since the folder was listed
        row["error"] = "unreadable (a broken link or a file removed while reading)"
        return row, None
    row["file_size"] = size
    try:
        with open(path, "rb") as fp:
            ds, ended_early = _dcmread(fp, _HEADER_TAGS, 256)
    except InvalidDicomError:
        row["error"] = "not a DICOM file"
        return row, None
    except Exception as exc:  # noqa: BLE001 - any parser failure means the header is unreadable
        row.update(is_dicom=True, error=f"header unreadable ({type(exc).__name__})")
        return row, None
    row["is_dicom"] = True
    meta = getattr(ds, "file_meta", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sop = str(_get(ds, "SOPClassUID") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
            if not sop:  # every DICOM object names its class: the file was cut inside its file meta
                row["error"] = f"truncated or damaged: no SOPClassUID ({size} bytes)"
                return row, None
            row["sop_class"] = UID(sop).name if sop else None
            ts = str(meta.get("TransferSyntaxUID", "")) if meta else ""
            row["transfer_syntax"] = UID(ts).name if ts else None
            series_uid = _get(ds, "SeriesInstanceUID")
            row["series"] = _hash(str(series_uid)) if series_uid else None
            instance_uid = _get(ds, "SOPInstanceUID")
            row["instance"] = _hash(str(instance_uid)) if instance_uid else None
            row.update(
                modality=_text(_get(ds, "Modality")),
                series_number=_int(_get(ds, "SeriesNumber")),
                acquisition_number=_int(_get(ds, "AcquisitionNumber")),
                instance_number=_int(_get(ds, "InstanceNumber")),
                image_type=_text(_get(ds, "ImageType")),
                rows=_int(_get(ds, "Rows")),
                columns=_int(_get(ds, "Columns")),
                frames=_int(_get(ds, "NumberOfFrames")) or 1,
                position=_floats(_get(ds, "ImagePositionPatient"), 3),
                orientation=_floats(_get(ds, "ImageOrientationPatient"), 6),
                pixel_spacing=_floats(_get(ds, "PixelSpacing"), 2),
                slice_thickness=_float(_get(ds, "SliceThickness")),
                kernel=_text(_get(ds, "ConvolutionKernel")),
                gantry_tilt=_float(_get(ds, "GantryDetectorTilt")),
                bits_allocated=_int(_get(ds, "BitsAllocated")),
                bits_stored=_int(_get(ds, "BitsStored")),
                pixel_representation=_int(_get(ds, "PixelRepresentation")),
                samples_per_pixel=_int(_get(ds, "SamplesPerPixel")),
                photometric=_text(_get(ds, "PhotometricInterpretation")),
                rescale_slope=_float(_get(ds, "RescaleSlope")),
                rescale_intercept=_float(_get(ds, "RescaleIntercept")),
                modality_lut="ModalityLUTSequence" in ds,
                padding_value=_int(_get(ds, "PixelPaddingValue")),
                padding_limit=_int(_get(ds, "PixelPaddingRangeLimit")),
            )
        except Exception as exc:  # noqa: BLE001 - malformed values: the file is listed, flagged unreadable
            row["error"] = f"header unreadable ({type(exc).__name__})"
            return row, None
    if sop == DICOMDIR_STORAGE:
        row["readable"] = True
        return row, None
    if ended_early:
        row["error"] = f"truncated: file ends inside a data element ({size} bytes)"
        return row, None
    pixel = ds.get_item("PixelData", keep_deferred=True)
    is_image_class = sop.startswith("1.2.840.10008.5.1.4.1.1.") and not sop.startswith("1.2.840.10008.5.1.4.1.1.88")
    if pixel is None:
        if is_image_class and (row["rows"] or "Image Storage" in str(row["sop_class"])):
            row["error"] = f"truncated: no pixel data (file ends at {size} bytes)"
            return row, None
        row["readable"] = True
        return row, None
    row["is_image"] = True
    length = getattr(pixel, "length", None)
    tell = getattr(pixel, "value_tell", None)
    if length is not None and tell is not None and length != 0xFFFFFFFF and tell + length > size:
        row["error"] = f"truncated: pixel data needs {length} bytes, file ends {tell + length - size} bytes early"
        return row, None
    row["readable"] = True
    row["pixel_offset"] = _direct_offset(ds, pixel)
    return row, ds


def _direct_offset(ds: pydicom.Dataset, pixel) -> int | None:
    """File offset of the pixel data of a single-frame image whose stored values can be read straight from the
    file (native little-endian 16-bit grey-scale, rescale or padding tags that convert, no Modality LUT
    Sequence), as :func:`read_volume` does after :func:`_read_frames`'s checks; None for anything else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows, cols = int(_get(ds, "Rows")), int(_get(ds, "Columns"))
            bits_stored = int(_or(_get(ds, "BitsStored"), 16))
            direct = (
                str(ds.file_meta.get("TransferSyntaxUID", "")) in _NATIVE_LITTLE_ENDIAN
                and int(_get(ds, "NumberOfFrames") or 1) == 1
                and "PerFrameFunctionalGroupsSequence" not in ds
                and "SharedFunctionalGroupsSequence" not in ds
                and "ModalityLUTSequence" not in ds
                and int(_or(_get(ds, "BitsAllocated"), 0)) == 16
                and int(_or(_get(ds, "SamplesPerPixel"), 1)) == 1
                and 1 <= bits_stored <= 16
                and int(_or(_get(ds, "HighBit"), bits_stored - 1)) == bits_stored - 1
                and int(_or(_get(ds, "PixelRepresentation"), 0)) in (0, 1)
                and pixel.length == rows * cols * 2
                and pixel.value_tell is not None
            )
            if direct:
                _transform(ds, None)  # the rescale and padding values convert
    except Exception:  # noqa: BLE001 - anything odd is left to the general reader
        return None
    return int(pixel.value_tell) if direct else None


def index_folder(folder: str | os.PathLike) -> pd.DataFrame:
    """Index every file below ``folder`` by its DICOM headers (pixel data is not read).

    Parameters
    ----------
    folder : path
        Scan folder, searched recursively.

    Returns
    -------
    pandas.DataFrame
        One row per file, sorted by ``path`` (relative, ``/``-separated), and one per frame of a multi-frame
        (enhanced) object, whose ``path`` is ``<file>#<frame number>``; ``file`` is the relative file path and
        ``frame`` the frame number (1-based, None for single-frame files). Columns: ``is_dicom``, ``readable``
        and ``error`` (why a file cannot be used, e.g. truncated pixel data), ``is_image`` (has pixel data),
        ``sop_class`` (name), ``modality``, ``series`` (hash of SeriesInstanceUID), ``series_number``,
        ``acquisition_number``, ``instance_number``, ``instance`` (hash of SOPInstanceUID), ``image_type``,
        ``rows``, ``columns``, ``frames``, ``position`` (x, y, z mm), ``orientation`` (6 direction cosines),
        ``pixel_spacing`` (row, column mm), ``slice_thickness`` (mm), ``kernel``, ``gantry_tilt`` (degrees),
        ``transfer_syntax`` (name), ``bits_allocated``, ``bits_stored``, ``pixel_representation``,
        ``samples_per_pixel``, ``photometric``, ``rescale_slope``, ``rescale_intercept``, ``modality_lut``
        (a Modality LUT Sequence is present), ``padding_value`` (stored PixelPaddingValue), ``padding_limit``
        (stored PixelPaddingRangeLimit), ``file_size`` (bytes), ``pixel_offset`` (file offset of the pixel data
        of a plain single-frame image that :func:`read_volume` may read directly, else None) and ``label``, the
        name used outside the library: ``file N`` (N = 1-based position of the file among the folder's files
        sorted by relative path), ``file N frame K`` for a frame.
        DICOMDIR and non-image objects have ``is_image`` False; non-DICOM files have ``is_dicom`` False.

    Raises
    ------
    lungtrial.errors.InputError
        If ``folder`` is not a folder (the message does not name it: folder names may be identifiers).
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError("the scan folder does not exist or is not a folder; expected a folder of DICOM files")
    files = _listing(root)
    rows = []
    for number, rel in enumerate(files, start=1):
        for row in _index_file(root / rel, rel):
            row["label"] = f"file {number}" if row["frame"] is None else f"file {number} frame {row['frame']}"
            rows.append(row)
    return pd.DataFrame(rows, columns=INDEX_COLUMNS).sort_values("path", ignore_index=True)


def _listing(root: Path) -> list[str]:
    """Relative paths (``/``-separated) of every file below ``root``, sorted by code point; the position in this
    list (from 1) is a file's number. Symbolic links to files count as files; linked folders are not entered."""
    files = []
    for dirpath, _, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root)
        files.extend((base / name).as_posix() for name in filenames)
    return sorted(files)


def folder_fingerprint(folder: str | os.PathLike) -> str | None:
    """A short hash of what a scan folder holds, without reading any file: relative path, size (bytes) and
    modification time (ns) of every file below it (as :func:`index_folder` sees them).

    A file added, removed, renamed or rewritten (which updates its modification time) changes the fingerprint;
    copying the folder with its times kept (``cp -a``, ``rsync -a``) or moving it does not. One ``stat`` per
    file: 2-3 ms per 500 files with the file system's metadata cached (``benchmarks/bench_fingerprint.py``).

    Parameters
    ----------
    folder : path
        Scan folder.

    Returns
    -------
    str or None
        32 hexadecimal digits (SHA-256, truncated); None when ``folder`` is not a folder. Names enter only
        through the hash.
    """
    root = Path(folder)
    if not root.is_dir():
        return None
    digest = hashlib.sha256()
    entries = []
    stack = [(os.fspath(root), "")]
    while stack:
        path, prefix = stack.pop()
        try:
            scan = os.scandir(path)
        except OSError:
            continue
        with scan:
            for entry in scan:
                rel = prefix + entry.name
                try:
                    if entry.is_dir():  # as os.walk: linked folders are not entered, and are not files
                        if not entry.is_symlink():
                            stack.append((entry.path, rel + "/"))
                        continue
                    st = entry.stat()
                    entries.append((rel, st.st_size, st.st_mtime_ns))
                except OSError:  # a broken link, or a file removed meanwhile
                    entries.append((rel, -1, -1))
    for rel, size, mtime in sorted(entries):
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]


@dataclass
class SeriesChoice:
    """The series chosen for measurement.

    Attributes
    ----------
    series : str or None
        Sub-series key (``<hash of SeriesInstanceUID>`` or ``<hash>.<n>`` when one UID was split), None when
        no candidate qualifies.
    files : list of str
        Relative paths (``<file>#<frame number>`` for frames of multi-frame objects) ordered by position along
        the slice normal (ascending).
    reason : str
        One sentence: why this series (or why none).
    candidates : pandas.DataFrame
        One row per image sub-series in the folder with ``eligible`` and ``why_not``.
    """

    series: str | None
    files: list[str]
    reason: str
    candidates: pd.DataFrame


@dataclass
class QCIssue:
    """A quality-control finding: ``severity`` "error" excludes the scan, "warning" is reported only.

    ``message`` does not name the scan: whoever reports it does (``scan S1-D7 excluded: <message>``).
    """

    code: str
    severity: str
    message: str


def _normal(orientation: Sequence[float]) -> np.ndarray:
    row = np.asarray(orientation[:3], float)
    col = np.asarray(orientation[3:], float)
    n = np.cross(row, col)
    return n / np.linalg.norm(n)


def _subseries_label(orientation: Sequence[float] | None) -> str:
    if orientation is None:
        return "unknown"
    axis = int(np.argmax(np.abs(_normal(orientation))))
    return ("sagittal", "coronal", "axial")[axis]


def _orientation_keys(orientations: pd.Series, tol: float = 1e-3) -> list[tuple[float, ...] | None]:
    """Each orientation replaced by the first one seen within ``tol`` (direction cosines), so that rounding
    jitter does not split a series."""
    seen: list[tuple[float, ...]] = []
    keys = []
    for o in orientations:
        if o is None:
            keys.append(None)
            continue
        match = next((r for r in seen if max(abs(a - b) for a, b in zip(r, o, strict=True)) <= tol), None)
        if match is None:
            match = tuple(round(v, 4) for v in o)
            seen.append(match)
        keys.append(match)
    return keys


def _split_subseries(images: pd.DataFrame) -> pd.DataFrame:
    """Add a ``subseries`` column: one UID is split by orientation, matrix, pixel spacing, thickness, and by
    acquisition number when acquisitions cover the same positions (two passes over one region)."""
    images = images.copy()
    orient = _orientation_keys(images["orientation"])
    spacing = images["pixel_spacing"].map(lambda s: None if s is None else tuple(round(v, 4) for v in s))
    thick = images["slice_thickness"].map(lambda t: None if t is None else round(t, 2))
    keys = list(zip(images["series"], orient, images["rows"], images["columns"], spacing, thick, strict=True))
    images["_group"] = [str(k) for k in keys]
    labels = {}
    for series, group in images.groupby("series", sort=False):
        parts = []
        for _, sub in group.groupby("_group", sort=False):
            parts.extend(_split_acquisitions(sub))
        parts.sort(key=lambda idx: (-len(idx), min(images.loc[idx, "path"])))
        for i, idx in enumerate(parts, start=1):
            for j in idx:
                labels[j] = series if len(parts) == 1 else f"{series}.{i}"
    images["subseries"] = pd.Series(labels)
    return images.drop(columns="_group")


def _split_acquisitions(sub: pd.DataFrame) -> list[list]:
    acq = pd.to_numeric(sub["acquisition_number"]).fillna(-1)
    if acq.nunique() < 2 or sub["orientation"].iloc[0] is None or sub["position"].isna().any():
        return [list(sub.index)]
    n = _normal(sub["orientation"].iloc[0])
    s = sub["position"].map(lambda p: float(np.dot(p, n)))
    ranges = sorted((s[acq == a].min(), s[acq == a].max(), a) for a in acq.unique())
    overlap = any(nxt[0] <= prev[1] for prev, nxt in itertools.pairwise(ranges))
    if not overlap:
        return [list(sub.index)]
    return [list(sub.index[acq == a]) for a in sorted(acq.unique())]


def _order(rows: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Files ordered by position along the slice normal and those positions (mm)."""
    orientation = rows["orientation"].iloc[0]
    n = _normal(orientation)
    s = np.array([float(np.dot(p, n)) for p in rows["position"]])
    order = np.argsort(s, kind="stable")
    return list(rows["path"].to_numpy()[order]), s[order]


def _candidate_row(key: str, rows: pd.DataFrame, min_slices: int, max_thickness: float) -> dict:
    first = rows.iloc[0]
    why = []
    sop = first["sop_class"] or "unknown SOP class"
    if sop not in (UID(CT_IMAGE_STORAGE).name, *(UID(u).name for u in ENHANCED_CT_STORAGE)):
        why.append(f"not CT image storage ({sop})")
    if first["modality"] != "CT":
        why.append(f"modality {first['modality'] or 'missing'}, not CT")
    image_type = (first["image_type"] or "").upper()
    if "LOCALIZER" in image_type or "SCOUT" in image_type:
        why.append("localizer")
    if first["samples_per_pixel"] not in (None, 1) or (first["photometric"] or "MONOCHROME2") not in (
        "MONOCHROME1",
        "MONOCHROME2",
    ):
        why.append(f"not grey-scale ({first['photometric']})")
    if ((rows["frames"] > 1) & rows["frame"].isna()).any():
        why.append("multi-frame object without per-frame functional groups")
    geometry_ok = rows["orientation"].notna().all() and rows["position"].notna().all()
    label = _subseries_label(first["orientation"])
    spacing = None
    if not geometry_ok:
        why.append("ImagePositionPatient/ImageOrientationPatient missing")
    else:
        if label != "axial":
            why.append(f"{label}, not axial")
        _, s = _order(rows)
        if len(s) > 1:
            spacing = float(np.median(np.diff(s)))
    n = len(rows)
    if n < min_slices:
        why.append(f"{n} slices, fewer than {min_slices}")
    thickness = spacing if pd.isna(first["slice_thickness"]) else float(first["slice_thickness"])
    if thickness is not None and thickness > max_thickness:
        why.append(f"slices {thickness:g} mm thick, more than {max_thickness:g} mm")
    return {
        "series": key,
        "series_number": None if pd.isna(first["series_number"]) else int(first["series_number"]),
        "n_files": n,
        "modality": first["modality"],
        "sop_class": first["sop_class"],
        "image_type": first["image_type"],
        "orientation": label,
        "rows": None if pd.isna(first["rows"]) else int(first["rows"]),
        "columns": None if pd.isna(first["columns"]) else int(first["columns"]),
        "slice_thickness_mm": thickness,
        "spacing_mm": None if spacing is None else round(spacing, 4),
        "kernel": first["kernel"],
        "eligible": not why,
        "why_not": "; ".join(why),
    }


def _finite(value, default: float) -> float:
    """``value`` as a float, ``default`` when it is None or NaN."""
    return default if value is None or pd.isna(value) else float(value)


def _label_number(value) -> str:
    return "without number" if value is None or pd.isna(value) else str(int(value))


def _kernel_rank(kernel: str | None, prefer_kernels: Sequence[str]) -> int:
    values = [v.strip().lower() for v in (kernel if isinstance(kernel, str) else "").split("\\")]
    for i, wanted in enumerate(prefer_kernels):
        if wanted.lower() in values:
            return i
    return len(prefer_kernels)


def _image_rows(index: pd.DataFrame) -> pd.DataFrame:
    """Rows that carry image headers (including truncated images, so that QC can name them)."""
    has_header = index["rows"].notna() & index["series"].notna() & (index["is_image"] | index["error"].notna())
    return index[index["is_dicom"] & has_header]


def choose_series(
    index: pd.DataFrame,
    *,
    min_slices: int = 20,
    max_slice_thickness_mm: float = 5.0,
    prefer: str = "thinnest",
    prefer_kernels: Sequence[str] = (),
) -> SeriesChoice:
    """Choose the axial CT series to measure.

    Only grey-scale CT Image Storage or Enhanced CT Image Storage objects (frames) that are not localizers
    qualify; a SeriesInstanceUID holding several orientations, matrices, pixel spacings, slice thicknesses or
    overlapping acquisitions is split into sub-series first.

    Parameters
    ----------
    index : pandas.DataFrame
        Output of :func:`index_folder`.
    min_slices : int
        Sub-series with fewer slices do not qualify.
    max_slice_thickness_mm : float
        Sub-series with thicker slices (SliceThickness, else slice spacing) do not qualify, in mm.
    prefer : {"thinnest", "most_slices"}
        Ranking among qualifying sub-series (ties: the other criterion, then the lower SeriesNumber).
    prefer_kernels : sequence of str
        ConvolutionKernel values (case-insensitive); a sub-series with an earlier listed kernel ranks first.

    Returns
    -------
    SeriesChoice
        ``files`` ordered by ImagePositionPatient projected on the slice normal (never by InstanceNumber or
        file name).
    """
    if prefer not in ("thinnest", "most_slices"):
        raise InputError(f"imaging.series.prefer is {prefer!r}; expected 'thinnest' or 'most_slices'")
    images = _image_rows(index)
    if images.empty:
        return SeriesChoice(None, [], "No DICOM image was found in the folder.", pd.DataFrame())
    # copies of one SOP instance (same SOPInstanceUID) are used once: the first path
    copies = images["instance"].notna() & images.duplicated(subset=["series", "instance"], keep="first")
    images = images[~copies]
    images = _split_subseries(images)
    cands = pd.DataFrame(
        [
            _candidate_row(key, rows, min_slices, max_slice_thickness_mm)
            for key, rows in images.groupby("subseries", sort=True)
        ]
    )
    eligible = cands[cands["eligible"]]
    if eligible.empty:
        summary = "; ".join(
            f"series {_label_number(r.series_number)} ({r.n_files} files): {r.why_not}" for r in cands.itertuples()
        )
        return SeriesChoice(None, [], f"No axial CT series qualifies: {summary}.", cands)

    def rank(r) -> tuple:
        thin = _finite(r.slice_thickness_mm, math.inf)
        order = (thin, -r.n_files) if prefer == "thinnest" else (-r.n_files, thin)
        return (_kernel_rank(r.kernel, prefer_kernels), *order, _finite(r.series_number, math.inf), r.series)

    best = min(eligible.itertuples(), key=rank)
    files, _ = _order(images[images["subseries"] == best.series])
    criterion = "the thinnest slices" if prefer == "thinnest" else "the most slices"
    if prefer_kernels and _kernel_rank(best.kernel, prefer_kernels) < len(prefer_kernels):
        criterion = f"kernel {best.kernel}, then {criterion}"
    chosen = (
        f"Series {_label_number(best.series_number)} ({best.n_files} axial CT slices, "
        f"{_finite(best.slice_thickness_mm, math.nan):g} mm, kernel {best.kernel or 'unknown'})"
    )
    if len(eligible) == 1:
        reason = f"{chosen} is the only qualifying series"
    else:
        reason = f"{chosen} has {criterion} among {len(eligible)} qualifying series"
    set_aside = cands[~cands["eligible"]]
    if not set_aside.empty:
        reason += "; set aside: " + ", ".join(
            f"series {_label_number(r.series_number)} ({r.why_not})" for r in set_aside.itertuples()
        )
    reason += "."
    return SeriesChoice(best.series, files, reason, cands)


def _format_files(files: Sequence[str], limit: int = 3, names: Mapping[str, str] | None = None) -> str:
    """The first ``limit`` of ``files`` (relative paths), each by ``names[path]`` when given, and how many more."""
    files = [names.get(f, f) for f in files] if names else list(files)
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


@dataclass
class _Geometry:
    files: list[str]
    positions: np.ndarray  # (n, 3) LPS mm, in file order
    steps: np.ndarray  # projected distances between consecutive slices, mm
    tilt_deg: float


def _geometry(rows: pd.DataFrame) -> _Geometry:
    files, s = _order(rows)
    by_path = rows.set_index("path")
    positions = np.array([by_path.at[f, "position"] for f in files], float)
    n = _normal(rows["orientation"].iloc[0])
    tilt = 0.0
    if len(files) > 1:
        step = positions[-1] - positions[0]
        length = np.linalg.norm(step)
        if length > 0:
            tilt = math.degrees(math.acos(min(1.0, abs(float(np.dot(step, n))) / length)))
    return _Geometry(files, positions, np.diff(s), tilt)


def check_series(
    index: pd.DataFrame,
    files: Sequence[str],
    *,
    scan_id: str,
    min_slices: int = 20,
    max_slice_thickness_mm: float = 5.0,
    spacing_tolerance: float = 0.05,
    tilt_tolerance_deg: float = 0.5,
    names: Mapping[str, str] | None = None,
) -> list[QCIssue]:
    """Quality checks of one series before it is read.

    Parameters
    ----------
    index : pandas.DataFrame
        Output of :func:`index_folder`.
    files : sequence of str
        Relative paths of the series (e.g. ``SeriesChoice.files``).
    scan_id : str
        Scan name used in the message of an :class:`~lungtrial.errors.InputError` (the issues' messages do not
        name the scan).
    min_slices, max_slice_thickness_mm : int, float
        Fewer slices, or thicker slices (mm), is an error.
    spacing_tolerance : float
        Allowed relative deviation of a slice step from the median step before the spacing counts as uneven.
    tilt_tolerance_deg : float
        Smaller gantry tilts (degrees) are ignored.
    names : mapping of str to str, optional
        How messages name a file (relative path -> name, e.g. the index's ``label``); by default its relative
        path.

    Returns
    -------
    list of QCIssue
        Codes: ``no_series``, ``unreadable``, ``non_ct``, ``too_few_slices``, ``too_thick``, ``mixed_matrix``,
        ``mixed_orientation``, ``duplicate_position``, ``duplicate_file``, ``missing_slices``,
        ``uneven_spacing``, ``gantry_tilt``, ``unreadable_other``. Slice spacing is always measured along the
        slice normal, so a tilted series gets a warning only.
    """
    issues: list[QCIssue] = []

    def add(code: str, severity: str, message: str) -> None:
        issues.append(QCIssue(code, severity, message))

    def name(path: str) -> str:
        return names.get(path, path) if names else path

    if not files:
        add("no_series", "error", "no series to check (no file given)")
        return issues
    unknown = sorted(set(files) - set(index["path"]))
    if unknown:
        raise InputError(
            f"{scan_id}: {_format_files(unknown, names=names)} not in the folder index; expected indexed files"
        )
    rows = index.set_index("path").loc[list(files)].reset_index()
    series_keys = set(rows["series"].dropna())

    def unreadable(bad: pd.DataFrame) -> None:
        for err, grp in bad.groupby("error"):
            named = _format_files(grp["path"], names=names)
            add("unreadable", "error", f"{err}: {named}; expected complete DICOM images")

    unreadable(rows[~rows["readable"]])
    copies = index[index["instance"].isin(rows["instance"].dropna()) & ~index["path"].isin(rows["path"])]
    if not copies.empty:
        copied = _format_files(copies["path"], names=names)
        add("duplicate_file", "warning", f"{copied}: copies of images in the series, used once")
    # Unreadable DICOM files outside the chosen files: an image whose header names this series (and that is not a
    # copy of a chosen image) leaves the series incomplete; one cut before its header names a series is taken for
    # the missing slices when the series has a gap (below); the others are ignored.
    others = index[index["is_dicom"] & ~index["readable"] & ~index["path"].isin(rows["path"])]
    lost = others["series"].isin(series_keys) & ~others["instance"].isin(rows["instance"].dropna())
    unreadable(others[lost])
    others, lost = others[~lost], bool(lost.any())

    def ignored(bad: pd.DataFrame) -> None:
        for err, grp in bad.groupby("error"):
            others_named = _format_files(grp["path"], names=names)
            add("unreadable_other", "warning", f"{err}: {others_named}; file(s) outside the series ignored")

    ignored(others)
    non_ct = rows[rows["modality"] != "CT"]
    if not non_ct.empty:
        mods = ", ".join(sorted({str(m) for m in non_ct["modality"]}))
        add("non_ct", "error", f"modality {mods} in {_format_files(non_ct['path'], names=names)}; expected CT")
    if len(rows) < min_slices:
        add("too_few_slices", "error", f"{len(rows)} slices; expected at least {min_slices}")
    thick = rows["slice_thickness"].dropna()
    if not thick.empty and thick.max() > max_slice_thickness_mm:
        add("too_thick", "error", f"slices {thick.max():g} mm thick; expected at most {max_slice_thickness_mm:g} mm")

    siblings = _image_rows(index)
    siblings = siblings[siblings["series"].isin(series_keys)]
    for column, code, what in (
        ("_matrix", "mixed_matrix", "matrix"),
        ("_orient", "mixed_orientation", "orientation"),
    ):
        values = pd.concat([rows.assign(_in=True), siblings[~siblings["path"].isin(rows["path"])].assign(_in=False)])
        if column == "_matrix":
            values[column] = [f"{r:.0f}x{c:.0f}" for r, c in zip(values["rows"], values["columns"], strict=True)]
        else:
            values[column] = [
                "missing" if k is None else "\\".join(f"{v:g}" for v in k)
                for k in _orientation_keys(values["orientation"])
            ]
        main = values.loc[values["_in"], column].mode()
        if values[column].nunique(dropna=False) > 1 and not main.empty:
            odd = values[values[column] != main.iloc[0]]
            inside = bool(odd["_in"].any())
            shown = odd[column].iloc[0]
            where = "in the chosen files" if inside else "in the same series, set aside"
            add(
                code,
                "error" if inside else "warning",
                f"mixed {what} {where}: {_format_files(odd['path'], names=names)} ({shown}); expected {main.iloc[0]}",
            )
    missing = rows[rows["orientation"].isna() | rows["position"].isna() | rows["pixel_spacing"].isna()]
    if not missing.empty:
        add(
            "missing_geometry",
            "error",
            f"ImagePositionPatient, ImageOrientationPatient or PixelSpacing missing or malformed in "
            f"{_format_files(missing['path'], names=names)}; expected numbers",
        )
        return issues
    if any(i.code == "mixed_orientation" and i.severity == "error" for i in issues) or len(rows) < 2:
        return issues

    geo = _geometry(rows)
    by_path = rows.set_index("path")
    dup = np.flatnonzero(np.abs(geo.steps) < 1e-3)
    for i in dup:
        same = by_path.at[geo.files[i], "instance"] == by_path.at[geo.files[i + 1], "instance"]
        a, b = name(geo.files[i]), name(geo.files[i + 1])
        if same:
            add("duplicate_file", "error", f"{a} and {b} are copies of the same image; expected each slice once")
        else:
            add("duplicate_position", "error", f"{a} and {b} have the same position; expected one slice per position")
    steps = np.delete(geo.steps, dup)
    gap = False
    if steps.size:
        median = float(np.median(steps))
        tol = spacing_tolerance * median + 0.01
        for i, step in enumerate(geo.steps):
            if i in dup or abs(step - median) <= tol:
                continue
            a, b = name(geo.files[i]), name(geo.files[i + 1])
            ratio = step / median
            if ratio > 1.5 and abs(ratio - round(ratio)) * median <= tol:
                if lost or others["series"].isna().any():
                    gap = True  # an unreadable file of this or of no known series: reported as such instead
                    continue
                add(
                    "missing_slices",
                    "error",
                    f"{round(ratio) - 1} slice(s) missing between {a} and {b}: {step:.2f} mm apart; "
                    f"expected {median:.2f} mm",
                )
            else:
                add("uneven_spacing", "error", f"{a} and {b} are {step:.2f} mm apart; expected {median:.2f} mm")
    if gap:
        issues[:] = [i for i in issues if i.code != "unreadable_other"]
        unreadable(others[others["series"].isna()])
        ignored(others[others["series"].notna()])
    tag = rows["gantry_tilt"].dropna()
    tag_tilt = float(tag.abs().max()) if not tag.empty else 0.0
    if geo.tilt_deg > tilt_tolerance_deg:
        add(
            "gantry_tilt",
            "warning",
            f"gantry tilt {geo.tilt_deg:.1f} degrees (table step along z, slices tilted; GantryDetectorTilt "
            f"{tag_tilt:g}); slice spacing measured along the slice normal, volume not resampled",
        )
    elif tag_tilt > tilt_tolerance_deg:
        add(
            "gantry_tilt",
            "warning",
            f"GantryDetectorTilt is {tag_tilt:g} degrees but ImagePositionPatient/ImageOrientationPatient describe "
            "an orthogonal stack; geometry taken from the positions",
        )
    return issues


def _reorientation(orientation: Sequence[float]) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Axis permutation and flips that bring the (slice, row, column) array to (superior, posterior, left).

    Returns ``perm`` (for output axis k = z, y, x, the input axis) and ``flip`` (per output axis).
    """
    row = np.asarray(orientation[:3], float)
    col = np.asarray(orientation[3:], float)
    n = _normal(orientation)
    # direction of increasing index for input axes (slice, row index, column index) in LPS
    axes = np.stack([n, col, row])  # input axis i -> LPS vector
    targets = (2, 1, 0)  # output z <- LPS z (S), y <- LPS y (P), x <- LPS x (L)
    best = max(itertools.permutations(range(3)), key=lambda p: sum(abs(axes[p[k], targets[k]]) for k in range(3)))
    flip = tuple(bool(axes[best[k], targets[k]] < 0) for k in range(3))
    return best, flip


def _output_geometry(rows_cols: tuple[int, int], n: int, orientation, pixel_spacing, dz: float, first, last):
    """Shape, spacing, origin and direction of the reoriented volume (see :func:`read_volume`)."""
    row = np.asarray(orientation[:3], float)
    col = np.asarray(orientation[3:], float)
    normal = _normal(orientation)
    perm, flip = _reorientation(orientation)
    in_shape = (n, rows_cols[0], rows_cols[1])
    in_spacing = (dz, float(pixel_spacing[0]), float(pixel_spacing[1]))
    in_vectors = [normal, col, row]  # unit vectors of increasing input index
    shape = tuple(in_shape[p] for p in perm)
    spacing = tuple(in_spacing[p] for p in perm)
    origin = np.asarray(first, float).copy()
    direction = np.zeros((3, 3))
    for k, p in enumerate(perm):
        v = in_vectors[p]
        if flip[k]:
            # the last slice's own position keeps a tilted (sheared) stack's origin on its first voxel
            origin = origin + (np.asarray(last, float) - first if p == 0 else v * in_spacing[p] * (in_shape[p] - 1))
            v = -v
        direction[:, 2 - k] = v  # direction columns in (x, y, z) order, as in ITK
    return shape, spacing, origin, direction


def ingest(
    folder: str | os.PathLike,
    scan_id: str,
    *,
    strict: bool = False,
    index: pd.DataFrame | None = None,
    **series_options,
) -> dict:
    """Index a scan folder, choose and check its series: the content of ``series.json``.

    Parameters
    ----------
    folder : path
        Scan folder (searched recursively).
    scan_id : str
        Trial scan ID, used in messages.
    strict : bool
        Raise :class:`lungtrial.errors.ScanExcluded` instead of returning status "excluded".
    index : pandas.DataFrame, optional
        ``index_folder(folder)`` when the caller already has it (and passes it on to :func:`read_volume`).
    **series_options
        ``min_slices``, ``max_slice_thickness_mm``, ``prefer``, ``prefer_kernels`` (see :func:`choose_series`).

    Returns
    -------
    dict
        JSON-serialisable: ``scan_id``, ``status`` ("ok" | "excluded"), ``reasons`` (why excluded; like the
        ``warnings`` they do not repeat the scan's name),
        ``warnings``, ``series`` (sub-series key), ``reason`` (one sentence: why this series, or why none),
        ``files`` (the series' files ordered along the slice normal, by number: ``file N``, ``file N frame K``
        for the frames of an enhanced multi-frame object; see :func:`index_folder`), ``geometry`` (empty when
        excluded;
        ``shape`` (z, y, x), ``spacing`` (dz, dy, dx) mm, ``origin`` (x, y, z) LPS mm and ``direction`` of the
        reoriented volume, ``tilt_deg``, ``orientation``, ``image_orientation_patient``, ``rescale``,
        ``transfer_syntax``, ``slice_thickness_mm``, ``kernel``), ``candidates`` (one dict per image
        sub-series) and ``n_files_indexed``.
    """
    allowed = {"min_slices", "max_slice_thickness_mm", "prefer", "prefer_kernels"}
    unknown = set(series_options) - allowed
    if unknown:
        raise TypeError(f"unknown series option(s): {', '.join(sorted(unknown))}")
    if index is None:
        index = index_folder(folder)
    choice = choose_series(index, **series_options)
    names = _names(index)
    out = {
        "scan_id": scan_id,
        "status": "ok",
        "reasons": [],
        "warnings": [],
        "series": choice.series,
        "reason": choice.reason,
        "files": [names[f] for f in choice.files],
        "geometry": {},
        "candidates": _records(choice.candidates),
        "n_files_indexed": len(index),
    }
    if choice.series is None:
        out["status"] = "excluded"
        out["reasons"] = [choice.reason]
    else:
        check_options = {k: v for k, v in series_options.items() if k in ("min_slices", "max_slice_thickness_mm")}
        issues = check_series(index, choice.files, scan_id=scan_id, names=names, **check_options)
        out["reasons"] = [i.message for i in issues if i.severity == "error"]
        out["warnings"] = [i.message for i in issues if i.severity == "warning"]
        if out["reasons"]:
            out["status"] = "excluded"
        else:
            out["geometry"] = _geometry_summary(index.set_index("path").loc[choice.files].reset_index())
    if strict and out["status"] == "excluded":
        raise ScanExcluded(scan_id, out["reasons"])
    return out


def _names(index: pd.DataFrame) -> dict[str, str]:
    """Relative path (``path`` column) -> the name used outside the library (``label``: ``file N``)."""
    if "label" in index.columns and index["label"].notna().all():
        return dict(zip(index["path"], index["label"], strict=True))
    numbers = {rel: n for n, rel in enumerate(sorted(set(index["file"])), start=1)}
    return {
        path: f"file {numbers[rel]}" if frame is None or pd.isna(frame) else f"file {numbers[rel]} frame {int(frame)}"
        for path, rel, frame in zip(index["path"], index["file"], index["frame"], strict=True)
    }


def _records(df: pd.DataFrame) -> list[dict]:
    def clean(v):
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating, float)):
            return None if not math.isfinite(v) else float(v)
        if isinstance(v, np.bool_):
            return bool(v)
        return v

    return [{k: clean(v) for k, v in rec.items()} for rec in df.to_dict("records")]


def _geometry_summary(rows: pd.DataFrame) -> dict:
    geo = _geometry(rows)
    by_path = rows.set_index("path")
    first = by_path.loc[geo.files[0]]
    dz = float(np.median(geo.steps))
    shape, spacing, origin, direction = _output_geometry(
        (int(first["rows"]), int(first["columns"])),
        len(geo.files),
        first["orientation"],
        first["pixel_spacing"],
        dz,
        geo.positions[0],
        geo.positions[-1],
    )
    slopes = pd.to_numeric(rows["rescale_slope"]).fillna(1.0)
    intercepts = pd.to_numeric(rows["rescale_intercept"]).fillna(0.0)
    rescale = {
        "pairs": sorted({(float(a), float(b)) for a, b in zip(slopes, intercepts, strict=True)}),
        "modality_lut_sequence": bool(rows["modality_lut"].any()),
        "pixel_representation": sorted({int(v) for v in rows["pixel_representation"].dropna()}),
        "bits_stored": sorted({int(v) for v in rows["bits_stored"].dropna()}),
        "padding_value": sorted({int(v) for v in rows["padding_value"].dropna()}),
    }
    rescale["pairs"] = [list(p) for p in rescale["pairs"]]
    return {
        "shape": [int(v) for v in shape],
        "spacing": [round(float(v), 6) for v in spacing],
        "origin": [round(float(v), 4) for v in origin],
        "direction": [[round(float(v), 6) for v in r] for r in direction],
        "tilt_deg": round(geo.tilt_deg, 3),
        "orientation": _subseries_label(first["orientation"]),
        "image_orientation_patient": [round(float(v), 6) for v in first["orientation"]],
        "slice_thickness_mm": None if pd.isna(first["slice_thickness"]) else float(first["slice_thickness"]),
        "kernel": first["kernel"],
        "rescale": rescale,
        "transfer_syntax": sorted({str(v) for v in rows["transfer_syntax"].dropna()}),
    }


@dataclass
class CTVolume:
    """A CT volume in HU, reoriented to (superior, posterior, left) increasing indices.

    Attributes
    ----------
    hu : numpy.ndarray
        int16 (z, y, x) HU; padding voxels hold -1024.
    spacing : tuple of float
        (dz, dy, dx) in mm; dz is the slice step projected on the slice normal.
    origin : tuple of float
        (x, y, z) LPS position of voxel [0, 0, 0] in mm.
    direction : numpy.ndarray
        3 x 3; column j is the LPS unit vector of increasing x, y, z index (j = 0, 1, 2), as in ITK.
    padding : numpy.ndarray or None
        bool (z, y, x), True where the scanner stored padding (outside the reconstruction field); None if none.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    padding: np.ndarray | None


_PIXEL_TAGS = [
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ModalityLUTSequence",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
    "PixelData",
]
_NATIVE_LITTLE_ENDIAN = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


@dataclass
class _Transform:
    """Stored value -> HU of one frame: rescale (or the dataset holding a Modality LUT Sequence) and padding."""

    slope: float
    intercept: float
    lut: pydicom.Dataset | None
    padding: tuple[int, int] | None


def _transform(ds: pydicom.Dataset, frame: int | None) -> _Transform:
    item = None if frame is None else ds.PerFrameFunctionalGroupsSequence[frame - 1]
    slope = _float(_functional_group(ds, item, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _float(_functional_group(ds, item, "PixelValueTransformationSequence", "RescaleIntercept"))
    slope = _float(_get(ds, "RescaleSlope")) if slope is None else slope
    intercept = _float(_get(ds, "RescaleIntercept")) if intercept is None else intercept
    lut = ds if "ModalityLUTSequence" in ds and intercept is None else None
    padding = None
    pad_value = ds.get("PixelPaddingValue")
    if pad_value is not None:
        limit = ds.get("PixelPaddingRangeLimit")
        lo, hi = sorted((int(pad_value), int(limit if limit is not None else pad_value)))
        padding = (lo, hi)
    return _Transform(1.0 if not slope else slope, intercept or 0.0, lut, padding)


def _read_frames(path: Path, rel: str, frames: Sequence[int | None]) -> Iterator[tuple[_Transform, np.ndarray]]:
    """Transform and stored pixel values (rows, columns) of each requested frame of one file (None: the only
    frame of a single-frame file), in the order requested.

    Native little-endian 16-bit pixel data is read straight from the file into the array; anything else
    (compressed, big endian, other bit depths) goes through pydicom's decoders (pylibjpeg plugins), which also
    reconcile a JPEG 2000 codestream's signedness with PixelRepresentation.
    """
    try:
        with open(path, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds, ended_early = _dcmread(fp, _PIXEL_TAGS, 1024)
            if ended_early:
                raise InputError(f"{rel}: file ends inside a data element; expected a complete DICOM file")
            elem = ds.get_item("PixelData", keep_deferred=True)
            if elem is None:
                raise InputError(f"{rel}: no PixelData element; expected a CT image")
            rows, cols = int(ds.Rows), int(ds.Columns)
            n_frames = int(ds.get("NumberOfFrames", 1) or 1)
            bits_stored = int(ds.get("BitsStored", 16))
            signed = int(ds.get("PixelRepresentation", 0)) == 1
            native = (
                str(ds.file_meta.get("TransferSyntaxUID", "")) in _NATIVE_LITTLE_ENDIAN
                and int(ds.get("BitsAllocated", 0)) == 16
                and int(ds.get("SamplesPerPixel", 1)) == 1
                and int(ds.get("HighBit", bits_stored - 1)) == bits_stored - 1
                and elem.length == n_frames * rows * cols * 2
            )
            for frame in frames:
                if frame is not None and not 1 <= frame <= n_frames:
                    raise InputError(f"{rel}: frame {frame} requested; expected 1 to {n_frames}")
                index = 0 if frame is None else frame - 1
                if not native:
                    from pydicom.pixels import pixel_array

                    stored = pixel_array(ds, index=index) if n_frames > 1 else ds.pixel_array
                else:
                    stored = np.empty((rows, cols), "<i2" if signed else "<u2")
                    if elem.value is not None:
                        stored.ravel()[:] = np.frombuffer(elem.value, stored.dtype, rows * cols, index * stored.nbytes)
                    else:
                        fp.seek(elem.value_tell + index * stored.nbytes)
                        if fp.readinto(memoryview(stored).cast("B")) != stored.nbytes:
                            raise InputError(f"{rel}: truncated pixel data; expected {stored.nbytes} bytes per frame")
                    _mask_bits(stored, bits_stored)
                if stored.ndim != 2:
                    raise InputError(f"{rel}: pixel array has shape {stored.shape}; expected grey-scale frames")
                yield _transform(ds, frame), stored
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader or decoder failure is reported with the file name
        raise InputError(
            f"{rel}: pixel data cannot be read or decoded ({type(exc).__name__}); expected a readable CT image"
        ) from None


def _store_hu(tr: _Transform, stored: np.ndarray, out: np.ndarray, padding_below_hu: float) -> np.ndarray | None:
    """Write the HU of ``stored`` into the int16 view ``out`` (which may share ``stored``'s memory); return the
    padding mask (None if no padding).

    Padding: stored PixelPaddingValue (up to PixelPaddingRangeLimit) and values below ``padding_below_hu``
    after the modality LUT; they are set to ``PADDING_FILL_HU``.
    """
    from pydicom.pixels import apply_modality_lut

    pad = None
    if stored.itemsize == 1:
        stored = stored.astype(np.int16)
    if tr.padding is not None:
        lo, hi = tr.padding
        if tr.lut is not None or hi * tr.slope + tr.intercept >= padding_below_hu:  # else found as "low" below
            pad = stored == lo if lo == hi else (stored >= lo) & (stored <= hi)
    if tr.lut is not None:
        hu = apply_modality_lut(stored, tr.lut)
        low = hu < padding_below_hu
        np.copyto(out, np.clip(np.rint(hu), -32768, 32767), casting="unsafe")
    elif tr.slope == 1 and tr.intercept == int(tr.intercept) and stored.dtype.kind in "iu" and stored.itemsize == 2:
        offset = int(tr.intercept)
        threshold = math.ceil(padding_below_hu - offset)  # stored values below it are padding
        info = np.iinfo(stored.dtype)
        if threshold <= info.min:
            low = None
        else:
            low = stored < min(threshold, info.max) if threshold <= info.max else np.ones(stored.shape, bool)
        # 16-bit modular addition is exact wherever the result fits int16; results that would wrap below
        # -32768 are all under the padding threshold and overwritten below
        if info.max + offset <= 32767 or int(stored.max()) + offset <= 32767:
            np.add(stored.view(np.uint16), np.uint16(offset % 65536), out=out.view(np.uint16))
        else:
            np.copyto(out, np.clip(stored.astype(np.int32) + offset, -32768, 32767), casting="unsafe")
    else:
        hu = stored * tr.slope + tr.intercept
        low = hu < padding_below_hu
        np.copyto(out, np.clip(np.rint(hu), -32768, 32767), casting="unsafe")
    if low is not None:
        pad = low if pad is None else pad | low
    if pad is None or not pad.any():
        return None
    np.copyto(out, PADDING_FILL_HU, where=pad)
    return pad


def _resolve(root: Path, ref: str) -> tuple[str, int | None]:
    """Relative file path and frame number (None for single-frame files) of a ``files`` entry given as a path
    (``<file>#<frame number>`` for a frame)."""
    name, sep, number = ref.rpartition("#")
    if sep and number.isdigit() and not (root / ref).is_file():
        return name, int(number)
    return ref, None


def _resolver(root: Path, index: pd.DataFrame | None):
    """A function from a ``files`` entry to (relative path, frame number or None, name of the file in messages).

    Entries ``file N`` / ``file N frame K`` are looked up by the ``label`` of ``index`` when given (the number of
    the file in the folder's sorted listing when it was indexed), else among the folder's files listed again;
    anything else is a relative path (``<file>#<frame>``).
    """
    # the index's own numbering (a file that gave no row keeps its number: labels follow the folder's listing)
    numbered = {}
    if index is not None and "label" in index.columns:
        for label, rel in zip(index["label"], index["file"]):
            match = _LABEL.match(str(label))
            if match is not None:
                numbered[int(match.group(1))] = rel
    listing = None

    def resolve(ref: str) -> tuple[str, int | None, str]:
        nonlocal listing
        match = _LABEL.match(ref)
        if match is None:
            rel, frame = _resolve(root, ref)
            return rel, frame, rel
        number = int(match.group(1))
        frame = match.group(2)
        if number in numbered:
            return numbered[number], None if frame is None else int(frame), f"file {number}"
        if listing is None:
            listing = _listing(root)
        if not 1 <= number <= len(listing):
            raise InputError(
                f"{ref}: the folder holds {len(listing)} files; expected the folder as it was when the series "
                "was chosen"
            )
        return listing[number - 1], None if frame is None else int(frame), f"file {number}"

    return resolve


def _direct_reads(index: pd.DataFrame | None, names: Sequence[str]) -> dict[str, tuple]:
    """Per file of ``names`` that :func:`index_folder` found directly readable (``pixel_offset``): its size in
    bytes, pixel data offset, (rows, columns), stored dtype, BitsStored and transform."""
    if index is None or "pixel_offset" not in index.columns:
        return {}
    rows = index[index["path"].isin(names) & index["frame"].isna() & index["pixel_offset"].notna()]
    out = {}
    for r in rows.itertuples(index=False):
        slope, intercept = _float(r.rescale_slope), _float(r.rescale_intercept)
        padding = None
        if r.padding_value is not None and not pd.isna(r.padding_value):
            limit = r.padding_limit if r.padding_limit is not None and not pd.isna(r.padding_limit) else r.padding_value
            padding = tuple(sorted((int(r.padding_value), int(limit))))
        signed = _finite(r.pixel_representation, 0) == 1
        out[r.path] = (
            int(r.file_size),
            int(r.pixel_offset),
            (int(r.rows), int(r.columns)),
            np.dtype("<i2" if signed else "<u2"),
            int(_finite(r.bits_stored, 16)),
            _Transform(1.0 if not slope else slope, intercept or 0.0, None, padding),
        )
    return out


def _read_direct(path: Path, size: int, offset: int, stored: np.ndarray, bits_stored: int) -> bool:
    """Read one frame of stored values at ``offset`` of ``path`` into ``stored`` (which has the file's dtype);
    False (nothing trusted) if the file is no longer the one indexed (``size`` bytes) or ends early."""
    try:
        with open(path, "rb", buffering=0) as fp:
            if os.fstat(fp.fileno()).st_size != size:
                return False
            fp.seek(offset)
            if fp.readinto(memoryview(stored).cast("B")) != stored.nbytes:
                return False
    except OSError:
        return False
    _mask_bits(stored, bits_stored)
    return True


def _mask_bits(stored: np.ndarray, bits_stored: int) -> None:
    """Sign-extend (signed) or mask (unsigned) 16-bit stored values above BitsStored, in place."""
    if bits_stored < 16:
        shift = 16 - bits_stored
        if stored.dtype.kind == "i":  # sign-extend from bit bits_stored - 1
            stored <<= shift
            stored >>= shift
        else:  # bits above HighBit are not pixel data
            stored &= (1 << bits_stored) - 1


def read_volume(
    folder: str | os.PathLike,
    series: dict,
    *,
    padding_below_hu: float = PADDING_BELOW_HU,
    index: pd.DataFrame | None = None,
    padding_mask: bool = True,
) -> CTVolume:
    """Read the chosen series in HU, reoriented so that x increases to the patient's left, y to posterior and
    z to superior (axis flips and transposes only, no resampling).

    Parameters
    ----------
    folder : path
        Scan folder given to :func:`ingest`.
    series : dict
        Output of :func:`ingest` (``files`` ordered along the slice normal, ``geometry``).
    padding_below_hu : float
        Values below this (HU, after the modality LUT) are padding, as are stored PixelPaddingValue values.
    index : pandas.DataFrame, optional
        The :func:`index_folder` table the series was chosen from (``ingest(..., index=index)``). Files it found
        directly readable (native little-endian 16-bit single-frame images, ``pixel_offset``) are then read
        with one ``readinto`` at the recorded offset, straight into the volume where the in-plane layout allows,
        without parsing their headers again; any other file, or one whose size changed since indexing, goes
        through pydicom as without ``index``. The result is the same either way.
    padding_mask : bool
        Return the padding mask (``CTVolume.padding``); False skips building it (padding voxels still read
        -1024 HU) and ``padding`` is None.

    Returns
    -------
    CTVolume
        ``hu`` int16 (z, y, x) via the modality LUT (Rescale Slope/Intercept or Modality LUT Sequence); padding
        set to -1024 HU and returned as a mask.

    Raises
    ------
    lungtrial.errors.ScanExcluded
        If ``series`` has status "excluded".
    lungtrial.errors.InputError
        If a file cannot be read or decoded, or does not match the series geometry (message names the file).
    """
    if series.get("status") != "ok":
        raise ScanExcluded(str(series.get("scan_id")), list(series.get("reasons", [])) or ["series not ingested"])
    root = Path(folder)
    files = list(series["files"])
    geo = series["geometry"]
    orientation = geo["image_orientation_patient"]
    perm, flip = _reorientation(orientation)
    # output axis k (z, y, x) takes input axis perm[k] of (slice, row, column)
    if perm[0] != 0:
        raise InputError(
            f"{series.get('scan_id')}: slice normal is not the superior axis "
            f"(orientation {geo.get('orientation')}); expected an axial series"
        )
    transpose = perm[1] == 2
    slicer = tuple(slice(None, None, -1) if f else slice(None) for f in flip[1:])
    shape = tuple(geo["shape"])
    expected_plane = shape[1:]
    hu = new_volume(shape, np.int16, populate=True)  # every voxel is written
    padding = None
    n = len(files)
    file_plane = expected_plane[::-1] if transpose else expected_plane

    def output_slice(k: int, name: str, plane: tuple[int, int]) -> tuple[int, np.ndarray]:
        """Index of entry ``k`` in the volume and a view of its output slice in the file's (row, column) layout."""
        if tuple(plane) != tuple(file_plane):
            raise InputError(f"{name}: slice is {plane[0]}x{plane[1]}; expected {file_plane[0]}x{file_plane[1]}")
        target = n - 1 - k if flip[0] else k
        view = hu[target][slicer]
        return target, view.T if transpose else view

    def store(target: int, transform: _Transform, stored: np.ndarray, out: np.ndarray) -> None:
        nonlocal padding
        pad = _store_hu(transform, stored, out, padding_below_hu)
        if pad is not None and padding_mask:
            if padding is None:
                padding = np.zeros(shape, bool)
            pad_view = padding[target][slicer]
            (pad_view.T if transpose else pad_view)[...] = pad

    resolve = _resolver(root, index)
    refs = [(k, *resolve(ref)) for k, ref in enumerate(files)]  # (k, relative path, frame, name in messages)
    direct = _direct_reads(index, [rel for _, rel, frame, _ in refs if frame is None])
    in_place = not transpose and not any(flip[1:])  # output slices have the files' (row, column) layout
    buffers: dict[np.dtype, np.ndarray] = {}
    # consecutive entries of one file (frames of a multi-frame object) are read with one header parse
    for (rel, name), group in itertools.groupby(refs, key=lambda r: (r[1], r[3])):
        group = list(group)
        if len(group) == 1 and group[0][2] is None and rel in direct:
            size, offset, plane, dtype, bits_stored, transform = direct[rel]
            target, out = output_slice(group[0][0], name, plane)
            stored = out.view(dtype) if in_place else buffers.setdefault(dtype, np.empty(plane, dtype))
            if _read_direct(root / rel, size, offset, stored, bits_stored):
                store(target, transform, stored, out)
                continue
        frames = _read_frames(root / rel, name, [frame for _, _, frame, _ in group])
        for (k, _, frame, _), (transform, stored) in zip(group, frames, strict=True):
            target, out = output_slice(k, name if frame is None else f"{name} frame {frame}", stored.shape)
            store(target, transform, stored, out)
    return CTVolume(
        hu=hu,
        spacing=tuple(float(v) for v in geo["spacing"]),
        origin=tuple(float(v) for v in geo["origin"]),
        direction=np.asarray(geo["direction"], float),
        padding=padding,
    )
