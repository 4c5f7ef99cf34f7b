"""The chosen series read into one int16 HU volume, reoriented (:func:`read_volume`), file by file
(:func:`_read_frames`)."""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lungtrial.errors import InputError, ScanExcluded
from lungtrial.memory import new_volume

from . import _directread
from ._geometry import _reorientation
from ._index import _LABEL, _listing, _private_key
from ._pixels import _PIXEL_TAGS, PADDING_BELOW_HU, _store_hu, _Transform, _transform
from ._values import _dcmread, _get


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


def _read_frames(path: Path, rel: str, frames: Sequence[int | None]) -> Iterator[tuple[_Transform, np.ndarray]]:
    """Transform and stored pixel values (rows, columns) of each requested frame of one file (None: the only
    frame of a single-frame file), in the order requested.

    The values are pydicom's ``pixel_array`` (its decoders, pylibjpeg plugins for compressed data, also reconcile a
    JPEG 2000 codestream's signedness with PixelRepresentation).
    """
    from pydicom.pixels import pixel_array

    try:
        with open(path, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds, ended_early = _dcmread(fp, _PIXEL_TAGS, 1024)
            if ended_early:
                raise InputError(f"{rel}: file ends inside a data element; expected a complete DICOM file")
            elem = ds.get_item("PixelData", keep_deferred=True)
            if elem is None:
                raise InputError(f"{rel}: no PixelData element; expected a CT image")
            n_frames = int(ds.get("NumberOfFrames", 1) or 1)
            for frame in frames:
                if frame is not None and not 1 <= frame <= n_frames:
                    raise InputError(f"{rel}: frame {frame} requested; expected 1 to {n_frames}")
                index = 0 if frame is None else frame - 1
                stored = pixel_array(ds, index=index) if n_frames > 1 else ds.pixel_array
                if stored.ndim != 2:
                    raise InputError(f"{rel}: pixel array has shape {stored.shape}; expected grey-scale frames")
                yield _transform(ds, frame), stored
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader or decoder failure is reported with the file name
        raise InputError(
            f"{rel}: pixel data cannot be read or decoded ({type(exc).__name__}); expected a readable CT image"
        ) from None


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
    direct = _directread.direct_reads(index, [rel for _, rel, frame, _ in refs if frame is None])
    in_place = not transpose and not any(flip[1:])  # output slices have the files' (row, column) layout
    buffers: dict[np.dtype, np.ndarray] = {}
    # consecutive entries of one file (frames of a multi-frame object) are read with one header parse
    for (rel, name), group in itertools.groupby(refs, key=lambda r: (r[1], r[3])):
        group = list(group)
        if len(group) == 1 and group[0][2] is None and rel in direct:
            size, offset, plane, dtype, bits_stored, transform = direct[rel]
            target, out = output_slice(group[0][0], name, plane)
            stored = out.view(dtype) if in_place else buffers.setdefault(dtype, np.empty(plane, dtype))
            if _directread.read_direct(root / rel, size, offset, stored, bits_stored):
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


def patient_key(folder: str | os.PathLike, series: dict) -> str | None:
    """A key of the PatientID of a chosen series (its first file's header), for telling whether two scans are of
    one patient within this process; never the ID itself, and not comparable with keys of another process (see
    :func:`._index._private_key`). None when the series has no file or no PatientID.

    Parameters
    ----------
    folder : path
        The scan's DICOM folder.
    series : dict
        What :func:`lungtrial.imaging.dicom.ingest` returned for it (status ok).
    """
    files = list(series.get("files") or [])
    if not files:
        return None
    rel, _, name = _resolver(Path(folder), None)(files[0])
    try:
        with open(Path(folder) / rel, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds, _ = _dcmread(fp, ["PatientID"], 256)
    except Exception as exc:  # noqa: BLE001 - reported with the file's name, as the pixel reads are
        raise InputError(f"{name}: header cannot be read ({type(exc).__name__}); expected a readable CT image") from None
    value = _get(ds, "PatientID")
    return _private_key(str(value)) if value else None


def other_patients(scan_a: tuple, scan_b: tuple) -> bool:
    """Whether two scans, each ``(folder, series)``, hold images of different patients: both PatientIDs known (see
    :func:`patient_key`) and different. A header that cannot be read counts as unknown (reading the volume says
    why)."""
    keys = []
    for folder, series in (scan_a, scan_b):
        try:
            keys.append(patient_key(folder, series))
        except InputError:
            keys.append(None)
    return None not in keys and keys[0] != keys[1]
