"""Write phantom volumes as DICOM CT series, and the demo trial's scans with their truth.

:func:`write_series` writes any HU volume ``(z, y, x)`` as a CT Image Storage series (one file per slice, Explicit
VR Little Endian). :func:`write_scan` renders one scan of the demo design and writes its study folder (main axial
series, optionally a 5 mm series of the same scan and a coronal localizer) and its truth; :func:`generate_trial`
writes the whole demo trial.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from ..io import write_csv, write_json, write_with
from .clinical import write_clinical
from .design import Design, opacity_course
from .design import design as make_design
from .phantom import Lesions, PhantomParams, make_chest

__all__ = ["write_series", "write_localizer", "write_scan", "generate_trial", "scan_phantom", "SIZES"]

# per size: matrix by matrix_level, slice thickness (mm) by thickness_level, z extent (mm)
SIZES: dict[str, dict] = {
    "tiny": {"matrix": (96, 96, 96), "thickness": (2.5, 2.5, 4.0, 5.0), "z_extent_mm": 270.0},
    "small": {"matrix": (128, 144, 160), "thickness": (1.25, 2.5, 3.0, 5.0), "z_extent_mm": 270.0},
    "full": {"matrix": (512, 512, 512), "thickness": (1.0, 1.0, 1.0, 1.0), "z_extent_mm": 300.0},
}
THICK_SERIES_MM = 5.0


def _uid(*parts: object) -> str:
    """A valid, deterministic UID derived from ``parts``."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _base_dataset(patient: Mapping[str, str], study: Mapping[str, str], series: Mapping[str, object]) -> Dataset:
    """The elements shared by every image of a series (no file meta, no per-image elements)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.Manufacturer = "LUNGTRIAL PHANTOM"
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    for group in (patient, study, series):
        for key, value in group.items():
            setattr(ds, key, value)
    return ds


def _image(template: Dataset, sop_uid: str) -> Dataset:
    """A new image dataset: a shallow copy of ``template`` with its own file meta and SOPInstanceUID."""
    ds = template.copy()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.preamble = b"\0" * 128
    ds.SOPInstanceUID = sop_uid
    return ds


def _encode(ds: Dataset) -> bytes:
    """Explicit VR Little Endian encoding of a dataset (no preamble, no file meta)."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()


_LONG_VRS = {"OB", "OW", "OF", "OD", "OL", "SQ", "UC", "UR", "UT", "UN"}


def _element(tag: int, vr: str, value: bytes) -> bytes:
    """One data element in Explicit VR Little Endian; ``value`` must already have an even length."""
    if vr in _LONG_VRS:
        return struct.pack("<HH2s2xI", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


def _text(value: str, pad: bytes = b" ") -> bytes:
    raw = value.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def _ds(values: Sequence[float]) -> bytes:
    return _text("\\".join(format(round(float(v), 4), ".10g") for v in values))


def _file_meta(sop_uid: str) -> bytes:
    """File meta information group (0002) of a CT image in Explicit VR Little Endian."""
    body = b"".join([
        _element(0x00020001, "OB", b"\x00\x01"),
        _element(0x00020002, "UI", _text(CTImageStorage, b"\0")),
        _element(0x00020003, "UI", _text(sop_uid, b"\0")),
        _element(0x00020010, "UI", _text(ExplicitVRLittleEndian, b"\0")),
        _element(0x00020012, "UI", _text(PYDICOM_IMPLEMENTATION_UID, b"\0")),
        _element(0x00020013, "SH", _text("LUNGTRIAL DEMO")),
    ])
    return _element(0x00020000, "UL", struct.pack("<I", len(body))) + body


# per-image elements of a series: SOPInstanceUID, InstanceNumber, ImagePositionPatient, SliceLocation, PixelData
_PER_IMAGE = (0x00080018, 0x00200013, 0x00200032, 0x00201041, 0x7FE00010)


class _SeriesEncoder:
    """Writes the DICOM files of a series, encoding the elements they share only once.

    The elements of ``template`` are grouped into runs between the per-image tags; each file is the preamble, the
    file meta information and the runs interleaved with its own elements, in ascending tag order.
    """

    def __init__(self, template: Dataset):
        runs: list[Dataset] = [Dataset() for _ in range(len(_PER_IMAGE) + 1)]
        for elem in template:
            if elem.tag in _PER_IMAGE:
                raise ValueError(f"{elem.keyword} is set per image, not in the series template")
            runs[sum(elem.tag > t for t in _PER_IMAGE)].add(elem)
        self.runs = [_encode(r) for r in runs]

    def write(self, path: Path, sop_uid: str, number: int, position: Sequence[float], pixels: bytes) -> None:
        own = [
            _element(0x00080018, "UI", _text(sop_uid, b"\0")),
            _element(0x00200013, "IS", _text(str(int(number)))),
            _element(0x00200032, "DS", _ds(position)),
            _element(0x00201041, "DS", _ds(position[2:])),
            _element(0x7FE00010, "OW", pixels),
        ]
        parts = [b"\0" * 128, b"DICM", _file_meta(sop_uid), self.runs[0]]
        for elem, run in zip(own, self.runs[1:]):
            parts += [elem, run]
        path.write_bytes(b"".join(parts))


def _store(hu: np.ndarray, intercept: float, slope: float, signed: bool, bits_stored: int) -> np.ndarray:
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2**bits_stored - 1)
    stored = np.clip(np.round((hu - intercept) / slope), lo, hi)
    return stored.astype(np.int16 if signed else np.uint16)


def write_series(
    hu: np.ndarray,
    spacing: Sequence[float],
    dicom_dir: str | Path,
    *,
    origin: Sequence[float] | None = None,
    thickness_mm: float | None = None,
    intercept: float = -1024.0,
    slope: float = 1.0,
    signed: bool = True,
    bits_stored: int | None = None,
    padding_value: int | None = None,
    fov_diameter_mm: float | None = None,
    superior_first: bool = True,
    patient: Mapping[str, str] | None = None,
    study: Mapping[str, str] | None = None,
    series_number: int = 2,
    series_description: str = "CHEST AXIAL",
    kernel: str = "B30f",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    uid_seed: object = "series",
    frame_of_reference_uid: str | None = None,
    file_names: str = "hex",
    suffix: str = ".dcm",
    extra_tags: Mapping[str, object] | None = None,
) -> list[Path]:
    """Write an HU volume as a DICOM CT series, one file per slice (Explicit VR Little Endian).

    Parameters
    ----------
    hu : ndarray, shape (nz, ny, nx)
        CT values in HU; ``z`` increases to superior, ``y`` to posterior, ``x`` to the patient's left (LPS,
        ImageOrientationPatient ``1\\0\\0\\0\\1\\0``).
    spacing : (dz, dy, dx)
        Voxel spacing in mm; ``dz`` is the distance between slice centres (SpacingBetweenSlices).
    dicom_dir : path
        Folder to write into (created).
    origin : (x, y, z), optional
        Patient position (mm) of voxel ``(0, 0, 0)``; default centres the volume on ``(0, 0, 0)``.
    thickness_mm : float, optional
        SliceThickness; default ``dz``.
    intercept, slope : float
        RescaleIntercept and RescaleSlope: stored = round((HU - intercept) / slope), clipped to the stored range.
    signed : bool
        PixelRepresentation 1 (int16) or 0 (uint16).
    bits_stored : int, optional
        BitsStored; default 16 for signed, 12 for unsigned pixels.
    padding_value : int, optional
        Stored value put outside the circular field of view and declared as PixelPaddingValue.
    fov_diameter_mm : float, optional
        Diameter of the circular field of view (centred on the image); default the smaller image side.
    superior_first : bool
        InstanceNumber 1 is the most superior slice (else the most inferior).
    patient, study : mapping, optional
        DICOM keywords and values for the patient and study modules (e.g. PatientName, StudyInstanceUID,
        StudyDate, AccessionNumber). A StudyInstanceUID is made from ``uid_seed`` if missing.
    series_number, series_description, kernel, image_type
        SeriesNumber, SeriesDescription, ConvolutionKernel, ImageType.
    uid_seed : object
        Seed of the deterministic SeriesInstanceUID and SOPInstanceUIDs.
    frame_of_reference_uid : str, optional
        FrameOfReferenceUID; default derived from the StudyInstanceUID.
    file_names : {"hex", "instance"}
        Random 16-hex-digit names (deterministic from ``uid_seed``; not in slice order) or ``IM00001`` style names.
    suffix : str
        File name suffix (e.g. ``".dcm"`` or ``""``).
    extra_tags : mapping, optional
        More DICOM keywords set on every slice (not SOPInstanceUID, InstanceNumber, ImagePositionPatient,
        SliceLocation or PixelData, which are set per slice).

    Returns
    -------
    list of Path
        The files written, in slice order (index 0 = lowest z).
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"hu must be a 3-d (z, y, x) volume, got shape {hu.shape}")
    if file_names not in ("hex", "instance"):
        raise ValueError(f"file_names must be 'hex' or 'instance', got {file_names!r}")
    nz, ny, nx = hu.shape
    dz, dy, dx = (float(s) for s in spacing)
    if origin is None:
        origin = (-(nx - 1) / 2 * dx, -(ny - 1) / 2 * dy, -(nz - 1) / 2 * dz)
    ox, oy, oz = (float(o) for o in origin)
    thickness = float(thickness_mm) if thickness_mm is not None else dz
    bits = int(bits_stored) if bits_stored is not None else (16 if signed else 12)
    study = dict(study or {})
    study.setdefault("StudyInstanceUID", _uid(uid_seed, "study"))
    series_uid = _uid(uid_seed, "series", series_number)
    for_uid = frame_of_reference_uid or _uid(study["StudyInstanceUID"], "frame")
    out = Path(dicom_dir)
    out.mkdir(parents=True, exist_ok=True)

    outside = None
    if padding_value is not None:
        diam = float(fov_diameter_mm) if fov_diameter_mm is not None else min(nx * dx, ny * dy)
        yy = (np.arange(ny) - (ny - 1) / 2) * dy
        xx = (np.arange(nx) - (nx - 1) / 2) * dx
        outside = (yy[:, None] ** 2 + xx[None, :] ** 2) > (diam / 2) ** 2

    rng = np.random.default_rng(np.frombuffer(series_uid.encode(), np.uint8))
    names = [f"{v:016x}" for v in rng.integers(0, 2**63, nz)] if file_names == "hex" else None
    series = {
        "SeriesInstanceUID": series_uid,
        "SeriesNumber": int(series_number),
        "SeriesDescription": series_description,
        "FrameOfReferenceUID": for_uid,
        "PositionReferenceIndicator": "",
        "ImageType": list(image_type),
        "ConvolutionKernel": kernel,
        "KVP": 120,
        "AcquisitionNumber": 1,
    }
    template = _base_dataset(patient or {}, study, series)
    template.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    template.SliceThickness = round(thickness, 4)
    template.SpacingBetweenSlices = round(dz, 4)
    template.PixelSpacing = [round(dy, 6), round(dx, 6)]
    template.SamplesPerPixel = 1
    template.PhotometricInterpretation = "MONOCHROME2"
    template.Rows, template.Columns = ny, nx
    template.BitsAllocated = 16
    template.BitsStored = bits
    template.HighBit = bits - 1
    template.PixelRepresentation = 1 if signed else 0
    template.RescaleIntercept = intercept
    template.RescaleSlope = slope
    template.RescaleType = "HU"
    template.WindowCenter = -600
    template.WindowWidth = 1500
    if outside is not None:
        template.PixelPaddingValue = int(padding_value)
    for key, value in (extra_tags or {}).items():
        setattr(template, key, value)
    encoder = _SeriesEncoder(template)
    files = []
    for k in range(nz):
        number = nz - k if superior_first else k + 1
        stored = _store(hu[k], intercept, slope, signed, bits)
        if outside is not None:
            stored[outside] = padding_value
        path = out / ((names[k] if names is not None else f"IM{number:05d}") + suffix)
        encoder.write(path, _uid(series_uid, k), number, (ox, oy, oz + k * dz),
                      np.ascontiguousarray(stored).tobytes())
        files.append(path)
    return files


def write_localizer(
    hu: np.ndarray,
    spacing: Sequence[float],
    dicom_dir: str | Path,
    *,
    origin: Sequence[float],
    patient: Mapping[str, str] | None = None,
    study: Mapping[str, str] | None = None,
    uid_seed: object = "localizer",
    frame_of_reference_uid: str | None = None,
    series_number: int = 1,
) -> Path:
    """Write a coronal localizer (scout) of ``hu``: one image, the mean HU along y, as its own series.

    ImageType is ``ORIGINAL\\PRIMARY\\LOCALIZER``; rows run from superior to inferior (ImageOrientationPatient
    ``1\\0\\0\\0\\0\\-1``). Returns the file written.
    """
    dz, dy, dx = (float(s) for s in spacing)
    ox, oy, oz = (float(o) for o in origin)
    nz, ny, nx = hu.shape
    proj = np.asarray(hu, np.float32).mean(axis=1)[::-1]  # (rows = z from top, columns = x)
    study = dict(study or {})
    study.setdefault("StudyInstanceUID", _uid(uid_seed, "study"))
    series_uid = _uid(uid_seed, "series", series_number)
    ds = _image(_base_dataset(patient or {}, study, {
        "SeriesInstanceUID": series_uid,
        "SeriesNumber": int(series_number),
        "SeriesDescription": "TOPOGRAM",
        "FrameOfReferenceUID": frame_of_reference_uid or _uid(study["StudyInstanceUID"], "frame"),
        "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"],
        "KVP": 120,
    }), _uid(series_uid, 0))
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [round(ox, 4), round(oy + (ny - 1) / 2 * dy, 4), round(oz + (nz - 1) * dz, 4)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.PixelSpacing = [round(dz, 6), round(dx, 6)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = proj.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.PixelData = _store(proj, -1024.0, 1.0, False, 12).tobytes()
    out = Path(dicom_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{_uid(series_uid, 'name')[-12:].replace('.', '')}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _row(design_: Design, scan_id: str) -> tuple[pd.Series, pd.Series]:
    scans = design_.scans.set_index("scan_id", drop=False)
    if scan_id not in scans.index:
        raise KeyError(f"scan {scan_id} is not in the demo design")
    scan = scans.loc[scan_id]
    return scan, design_.courses.loc[scan["subject_id"]]


def scan_phantom(design_: Design, scan_id: str, size: str = "small"):
    """Phantom parameters, lesions and grid of one demo scan.

    Returns ``(params, lesions, spacing, shape, thickness_mm)`` as used by :func:`write_scan`.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    scan, course = _row(design_, scan_id)
    preset = SIZES[size]
    matrix = int(preset["matrix"][int(scan["matrix_level"])])
    thick = float(preset["thickness"][int(scan["thickness_level"])])
    pix = float(scan["fov_mm"]) / matrix
    nz = int(round(preset["z_extent_mm"] / thick))
    scale = float(course["lung_scale"])
    params = PhantomParams(
        body_width_mm=float(course["body_width_mm"]),
        body_depth_mm=float(course["body_depth_mm"]),
        lung_width_mm=260.0 * scale * np.sqrt(float(course["body_width_mm"]) / 330.0),
        lung_depth_mm=175.0 * scale * np.sqrt(float(course["body_depth_mm"]) / 230.0),
        lung_height_mm=230.0 * scale,
        rotation_deg=float(scan["rotation_deg"]),
        offset_mm=(float(scan["offset_x_mm"]), float(scan["offset_y_mm"])),
        psf_sigma_mm=float(scan["psf_sigma_mm"]),
        noise_hu=float(scan["noise_hu"]),
        anatomy_seed=int(course["anatomy_seed"]),
    )
    ggo, cons = opacity_course(course, float(scan["study_day"]))
    lesions = Lesions(ground_glass_pct=round(ggo, 3), consolidation_pct=round(cons, 3), seed=int(course["lesion_seed"]))
    return params, lesions, (thick, pix, pix), (nz, matrix, matrix), thick


def _nifti(mask: np.ndarray, spacing: Sequence[float], origin: Sequence[float], path: Path) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    img.SetSpacing((float(spacing[2]), float(spacing[1]), float(spacing[0])))
    img.SetOrigin(tuple(float(o) for o in origin))
    sitk.WriteImage(img, str(path), useCompression=True)


def _padding(scan: pd.Series) -> int | None:
    """Stored value outside the field of view of a demo scan (only with signed pixels)."""
    return -2000 if (bool(scan["signed_pixels"]) and bool(scan["padding"])) else None


def _write_study(hu, truth, spacing, thick, scan, dicom_dir, uid_seed, patient, study) -> tuple[list[str], bool]:
    """The DICOM files of one demo scan; returns the series UIDs written and whether a 5 mm series was added."""
    for_uid = _uid(uid_seed, "frame")
    suffix = ".dcm" if int(scan["scan_seed"]) % 3 else ""
    common = {"patient": patient, "study": study, "frame_of_reference_uid": for_uid, "suffix": suffix,
              "superior_first": bool(scan["superior_first"]), "intercept": float(scan["rescale_intercept"]),
              "signed": bool(scan["signed_pixels"]), "padding_value": _padding(scan),
              "fov_diameter_mm": float(scan["fov_mm"])}
    write_series(hu, spacing, dicom_dir, origin=truth.origin, thickness_mm=thick, series_number=2,
                 series_description=f"CHEST {thick:g}mm LUNG", kernel="B60f", uid_seed=uid_seed, **common)
    series_uids = [_uid(uid_seed, "series", 2)]
    k = int(round(THICK_SERIES_MM / spacing[0]))
    thick_series = bool(scan["thick_series"]) and k >= 2 and abs(k * spacing[0] - THICK_SERIES_MM) < 1e-6
    if thick_series:
        n = hu.shape[0] // k
        thick_hu = hu[: n * k].reshape(n, k, *hu.shape[1:]).mean(axis=1)
        origin = (truth.origin[0], truth.origin[1], truth.origin[2] + (k - 1) / 2 * spacing[0])
        write_series(thick_hu, (k * spacing[0], spacing[1], spacing[2]), dicom_dir, origin=origin,
                     thickness_mm=k * thick, series_number=3,
                     series_description=f"CHEST {k * thick:g}mm SOFT", kernel="B30f", uid_seed=uid_seed,
                     **common)
        series_uids.append(_uid(uid_seed, "series", 3))
    if bool(scan["localizer"]):
        write_localizer(hu, spacing, dicom_dir, origin=truth.origin, patient=patient, study=study,
                        uid_seed=uid_seed, frame_of_reference_uid=for_uid)
        series_uids.append(_uid(uid_seed, "series", 1))

    return series_uids, thick_series


def write_scan(
    design: Design, scan_id: str, dicom_dir: str | Path, truth_dir: str | Path, size: str = "small"
) -> dict:
    """Render one demo scan and write its study folder and truth.

    Writes the DICOM files of ``scan_id`` into ``dicom_dir`` (main axial series; depending on the design also a
    5 mm series of the same scan and a coronal localizer) and ``truth_dir/{scan_id}.json`` with
    ``truth_dir/{scan_id}_lungs.nii.gz`` and ``truth_dir/{scan_id}_lesions.nii.gz`` on the main series' grid.
    ``size`` is ``"tiny"``, ``"small"`` or ``"full"`` (see :data:`SIZES`). The DICOM files are written into a
    temporary folder beside ``dicom_dir`` and moved into place when complete; a non-empty ``dicom_dir`` is refused
    (FileExistsError). Returns the truth dictionary (the JSON's content).
    """
    scan, course = _row(design, scan_id)
    params, lesions, spacing, shape, thick = scan_phantom(design, scan_id, size)
    hu, truth = make_chest(params, spacing, shape, lesions, thickness_mm=thick, seed=int(scan["scan_seed"]))
    uid_seed = f"{design.seed}/{scan_id}"
    date = str(scan["scan_date"]).replace("-", "")
    patient = {
        "PatientName": str(course["patient_name"]),
        "PatientID": str(course["patient_id"]),
        "PatientBirthDate": str(course["birth_date"]).replace("-", ""),
        "PatientSex": str(design.subjects.set_index("subject_id").loc[scan["subject_id"], "sex"]),
    }
    study = {
        "StudyInstanceUID": _uid(uid_seed, "study"),
        "StudyDate": date,
        "SeriesDate": date,
        "ContentDate": date,
        "StudyTime": "101500",
        "AccessionNumber": str(scan["accession_number"]),
        "StudyID": "1",
        "InstitutionName": str(course["institution"]),
        "ReferringPhysicianName": str(course["referring_physician"]),
        "StudyDescription": "CT CHEST",
    }
    dicom_dir = Path(dicom_dir)
    if dicom_dir.exists() and any(dicom_dir.iterdir()):
        raise FileExistsError(f"{dicom_dir} is not empty; remove it before writing scan {scan_id} again")
    dicom_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dicom_dir.name}.", dir=dicom_dir.parent))
    try:
        series_uids, thick_series = _write_study(hu, truth, spacing, thick, scan, tmp, uid_seed, patient, study)
        if dicom_dir.exists():
            dicom_dir.rmdir()
        os.replace(tmp, dicom_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)

    truth_dir = Path(truth_dir)
    truth_dir.mkdir(parents=True, exist_ok=True)
    for name, mask in (("lungs", truth.lungs), ("lesions", truth.lesions)):
        path = truth_dir / f"{scan_id}_{name}.nii.gz"
        write_with(lambda tmp, mask=mask: _nifti(mask, spacing, truth.origin, tmp), path)
    summary = truth.summary()
    record = {
        "scan_id": scan_id,
        "subject_id": str(scan["subject_id"]),
        "study_day": int(scan["study_day"]),
        **{k: round(v, 3) for k, v in summary.items()},
        "requested_ground_glass_pct": lesions.ground_glass_pct,
        "requested_consolidation_pct": lesions.consolidation_pct,
        "slice_thickness_mm": thick,
        "spacing_mm": [float(s) for s in spacing],
        "shape": [int(s) for s in hu.shape],
        "size": size,
        "series": 1 + thick_series + bool(scan["localizer"]),
        "thick_series": thick_series,
        "localizer": bool(scan["localizer"]),
        "rescale_intercept": float(scan["rescale_intercept"]),
        "signed_pixels": bool(scan["signed_pixels"]),
        "pixel_padding_value": _padding(scan),
        "planted_identifiers": sorted({
            patient["PatientName"], patient["PatientName"].split("^")[0], patient["PatientID"],
            patient["PatientBirthDate"], str(course["birth_date"]), study["AccessionNumber"],
            study["InstitutionName"], study["ReferringPhysicianName"], study["StudyInstanceUID"],
            _uid(uid_seed, "frame"), *series_uids,
        }),
    }
    write_json(record, truth_dir / f"{scan_id}.json", indent=1, end="\n")
    return record


def generate_trial(outdir: str | Path, size: str = "small", **design_kwargs) -> Design:
    """Write the whole demo trial under ``outdir``.

    ``subjects.csv``, ``scans.csv`` (``dicom_dir`` relative to ``outdir``), ``labs.csv``, ``adverse_events.csv``,
    ``dicom/<subject>/<scan_id>/`` and ``truth/``. ``design_kwargs`` go to :func:`lungtrial.demo.design.design`.
    Refuses to write into an ``outdir`` whose ``dicom`` folder already holds files. Returns the design.
    """
    outdir = Path(outdir)
    if (outdir / "dicom").exists() and any((outdir / "dicom").iterdir()):
        raise FileExistsError(f"{outdir / 'dicom'} already holds scans; remove it before generating the trial again")
    trial = make_design(**design_kwargs)
    write_clinical(trial, outdir)
    scans = trial.scans[["scan_id", "subject_id", "scan_date", "nominal_day"]].copy()
    scans["dicom_dir"] = [f"dicom/{s}/{c}" for s, c in zip(scans["subject_id"], scans["scan_id"])]
    write_csv(scans, outdir / "scans.csv")
    for scan_id, rel in zip(scans["scan_id"], scans["dicom_dir"]):
        write_scan(trial, scan_id, outdir / rel, outdir / "truth", size=size)
    return trial
