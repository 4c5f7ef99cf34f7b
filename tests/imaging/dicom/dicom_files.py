"""Odd DICOM series for the tests of lungtrial.imaging.dicom, built with pydicom (small matrices, in
``tmp_path``): a truth volume, datasets, stacks of slices in any orientation, and the check that no planted identifier
reaches an output."""

from __future__ import annotations

import json

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


SECRET = "Doe^Jane"  # a planted identifier that must never appear in outputs


def truth_volume(shape=(25, 24, 32)) -> np.ndarray:
    """HU volume in (z sup, y post, x left) order whose every axis and direction is distinguishable."""
    z, y, x = np.indices(shape)
    return (-1000 + 40 * z + 3 * y + x + (x > shape[2] - 5) * 500).astype(np.int16)


def new_ds(sop_class=CTImageStorage, series_uid="1.2.826.0.1.3680043.2.1", modality="CT") -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = SECRET
    ds.PatientID = "SECRET-ID-123"
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ConvolutionKernel = "B30f"
    return ds


def set_pixels(ds: Dataset, stored: np.ndarray, *, signed: bool = True, intercept: float | None = -1024.0) -> None:
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = int(signed)
    if intercept is not None:
        ds.RescaleIntercept = intercept
        ds.RescaleSlope = 1
    ds.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()


def write_stack(
    folder,
    hu: np.ndarray,
    *,
    spacing=(2.5, 0.7, 0.7),
    row=(1, 0, 0),
    col=(0, 1, 0),
    step=None,
    names=None,
    signed=True,
    intercept=-1024.0,
    series_uid="1.2.826.0.1.3680043.2.1",
    origin=(-10.0, -20.0, -100.0),
    skip=(),
    edit=None,
) -> list[str]:
    """Write the LPS-ordered truth volume ``hu`` (z, y, x) as axial slices with the given row/column directions.

    ``row``/``col`` are signed unit axes; each file's pixel (i, j) holds the truth voxel at
    position + j * dx * row + i * dy * col. ``step`` overrides the vector between slice positions (tilt).
    """
    folder.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = hu.shape
    dz, dy, dx = spacing
    row, col = np.array(row, float), np.array(col, float)
    normal = np.cross(row, col)
    size = np.array([nx, ny, nz]) - 1
    sp = np.array([dx, dy, dz])
    origin = np.asarray(origin, float)
    # in-plane extents: the row axis spans the truth's axis |row|
    n_cols = int(size[np.argmax(np.abs(row))] + 1)
    n_rows = int(size[np.argmax(np.abs(col))] + 1)
    files = []
    order = list(range(nz)) if normal[2] > 0 else list(range(nz))[::-1]
    for k, zi in enumerate(order):
        if zi in skip:
            continue
        # corner voxel index of this slice: start at the far end of negatively oriented axes
        corner = np.zeros(3)
        corner[2] = zi
        for vec in (row, col):
            axis = int(np.argmax(np.abs(vec)))
            corner[axis] = size[axis] if vec[axis] < 0 else 0
        position = origin + corner * sp
        if step is not None:
            position = origin + np.asarray(step, float) * zi + (corner * sp - np.array([0, 0, zi * dz]))
        i, j = np.indices((n_rows, n_cols))
        idx = corner[None, None, :] + j[..., None] * row + i[..., None] * col
        idx = idx.astype(int)
        plane = hu[zi, idx[..., 1], idx[..., 0]]
        ds = new_ds(series_uid=series_uid)
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [float(v) for v in (*row, *col)]
        ds.PixelSpacing = [dy, dx]
        ds.SliceThickness = dz
        ds.InstanceNumber = nz - k  # lies about the order
        stored = plane.astype(np.int32) - (int(intercept) if intercept is not None else 0)
        set_pixels(ds, stored, signed=signed, intercept=intercept)
        if edit is not None:
            edit(ds, k)
        name = names[k] if names is not None else f"IM{k:04d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
        files.append(name)
    return files


def no_identifiers(obj) -> None:
    text = json.dumps(obj)
    assert SECRET not in text and "SECRET-ID" not in text and "1.2.826.0.1.3680043" not in text


def named(folder, name: str) -> str:
    """How outputs name the file ``name`` of ``folder``: ``file N``, its number among the folder's sorted files."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return f"file {files.index(name) + 1}"
