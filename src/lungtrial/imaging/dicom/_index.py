"""Header index: every file of a scan folder by its DICOM headers, pixel data not read (:func:`index_folder`)."""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

import pandas as pd
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from ._fingerprint import hidden

from lungtrial.errors import InputError

from . import _directread
from ._pixels import _PIXEL_TAGS
from ._values import _dcmread, _float, _floats, _functional_group, _get, _int, _text

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


ENHANCED_CT_STORAGE = ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")


DICOMDIR_STORAGE = "1.2.840.10008.1.3.10"


#: What the index reads of each file: the identifying and geometry elements and everything reading its pixels needs.
_HEADER_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "PatientID",
    "StudyInstanceUID",
    "Modality",
    "SeriesInstanceUID",
    "SeriesNumber",
    "AcquisitionNumber",
    "InstanceNumber",
    "ImageType",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    "ConvolutionKernel",
    "GantryDetectorTilt",
    *_PIXEL_TAGS,
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
    "patient",
    "study",
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


#: Index column -> (header element, conversion) of the values :func:`_file_row` copies as they are.
_ROW_VALUES = {
    "modality": ("Modality", _text),
    "series_number": ("SeriesNumber", _int),
    "acquisition_number": ("AcquisitionNumber", _int),
    "instance_number": ("InstanceNumber", _int),
    "image_type": ("ImageType", _text),
    "rows": ("Rows", _int),
    "columns": ("Columns", _int),
    "frames": ("NumberOfFrames", _int),
    "position": ("ImagePositionPatient", lambda value: _floats(value, 3)),
    "orientation": ("ImageOrientationPatient", lambda value: _floats(value, 6)),
    "pixel_spacing": ("PixelSpacing", lambda value: _floats(value, 2)),
    "slice_thickness": ("SliceThickness", _float),
    "kernel": ("ConvolutionKernel", _text),
    "gantry_tilt": ("GantryDetectorTilt", _float),
    "bits_allocated": ("BitsAllocated", _int),
    "bits_stored": ("BitsStored", _int),
    "pixel_representation": ("PixelRepresentation", _int),
    "samples_per_pixel": ("SamplesPerPixel", _int),
    "photometric": ("PhotometricInterpretation", _text),
    "rescale_slope": ("RescaleSlope", _float),
    "rescale_intercept": ("RescaleIntercept", _float),
    "padding_value": ("PixelPaddingValue", _int),
    "padding_limit": ("PixelPaddingRangeLimit", _int),
}


def _hash(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:12]


_SECRET = os.urandom(16)  # per process: the keys below are comparable within one reading only


def _private_key(value: str) -> str:
    """A key for an identifying value (PatientID, StudyInstanceUID) that only groups images within this process:
    keyed with a random secret, so it can neither be reversed (a numeric PatientID could be, from a plain hash)
    nor matched across runs."""
    return hashlib.blake2b(value.encode(), key=_SECRET, digest_size=8).hexdigest()


def _empty_row(rel: str) -> dict:
    row = dict.fromkeys(INDEX_COLUMNS)
    row.update(path=rel, file=rel, is_dicom=False, readable=False, is_image=False, modality_lut=False)
    return row


def _index_file(path: Path, rel: str) -> list[dict]:
    """Index rows of one file: one row, or one per frame of a multi-frame object with functional groups."""
    row, ds = _file_row(path, rel)
    if ds is None or not row["is_image"] or "PerFrameFunctionalGroupsSequence" not in ds:
        return [row]
    return _frame_rows(ds, row)


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
            # patient and study only as keys that tell which images belong together, never who: hashed with a
            # secret of this process, so that no key can be traced back or matched outside it
            patient_id, study_uid = _get(ds, "PatientID"), _get(ds, "StudyInstanceUID")
            row["patient"] = _private_key(str(patient_id)) if patient_id else None
            row["study"] = _private_key(str(study_uid)) if study_uid else None
            series_uid = _get(ds, "SeriesInstanceUID")
            row["series"] = _hash(str(series_uid)) if series_uid else None
            instance_uid = _get(ds, "SOPInstanceUID")
            row["instance"] = _hash(str(instance_uid)) if instance_uid else None
            row.update({column: convert(_get(ds, keyword)) for column, (keyword, convert) in _ROW_VALUES.items()})
            row["frames"] = row["frames"] or 1
            row["modality_lut"] = "ModalityLUTSequence" in ds
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
    row["pixel_offset"] = _directread.pixel_offset(ds, pixel)
    return row, ds


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
        ``sop_class`` (name), ``modality``, ``patient`` and ``study`` (keys of PatientID and StudyInstanceUID that only tell
        whether two images share them, within this process), ``series`` (hash of SeriesInstanceUID),
        ``series_number``,
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
    """Relative paths (``/``-separated) of every file below ``root`` but hidden ones (:func:`hidden`, also inside
    hidden folders), sorted by code point; the position in this list (from 1) is a file's number. Symbolic links to
    files count as files; linked folders are not entered."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not hidden(d)]
        base = Path(dirpath).relative_to(root)
        files.extend((base / name).as_posix() for name in filenames if not hidden(name))
    return sorted(files)


def _names(index: pd.DataFrame) -> dict[str, str]:
    """Relative path (``path`` column) -> the name used outside the library (``label``: ``file N``)."""
    if "label" in index.columns and index["label"].notna().all():
        return dict(zip(index["path"], index["label"], strict=True))
    numbers = {rel: n for n, rel in enumerate(sorted(set(index["file"])), start=1)}
    return {
        path: f"file {numbers[rel]}" if frame is None or pd.isna(frame) else f"file {numbers[rel]} frame {int(frame)}"
        for path, rel, frame in zip(index["path"], index["file"], index["frame"], strict=True)
    }
