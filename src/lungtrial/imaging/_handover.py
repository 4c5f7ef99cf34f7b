"""The hand-over of each scan's DICOM folder (and lesion mask) from the workflow to its per-scan jobs, outside
Snakemake's records: :func:`hand_over_folders` in the Snakemake process, :func:`scan_folder`,
:func:`existing_scan_folder` and :func:`handed_over_lesion_mask` in a job. Imported from :mod:`lungtrial.imaging`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from lungtrial.errors import InputError

#: Environment variable naming the file through which the workflow hands its jobs the DICOM folder of each scan.
FOLDERS_ENV = "LUNGTRIAL_DICOM_FOLDERS"
_HANDED_OVER: list[int] = []  # the open in-memory hand-over file of this process (its descriptor), if any


def hand_over_folders(folders: Mapping[str, Mapping], tmpdir: str | os.PathLike) -> str:
    """Hand the jobs this process starts ``{scan_id: {"folder", "sheet", "row", "subject"}}``: each scan's DICOM
    folder, where the scans sheet names it (row: header = row 1) and its subject; returns the path the jobs read.

    This is how the workflow's per-scan jobs learn their folder without Snakemake handing them its path (an
    input or a parameter), which Snakemake would record in ``.snakemake/``, print in its log and embed in the
    report: folder names are often patient IDs or UIDs. Every Snakemake process that runs jobs (also on a cluster
    node) reads the sheets and hands over its own.

    The content lives in an in-memory file of this process (Linux ``memfd``, mode 0600), named to the jobs in the
    environment variable :data:`FOLDERS_ENV` as ``/proc/<pid>/fd/<n>``: it exists exactly as long as this
    process, whatever ends it (``kill -9`` included), and is never on disk. Where there are no in-memory files
    (not Linux), a private file in ``tmpdir`` (Snakemake's temporary folder) is used instead and removed when this
    process exits normally. A second call replaces the first hand-over.
    """
    payload = json.dumps({str(k): dict(v) for k, v in folders.items()}).encode()
    while _HANDED_OVER:
        os.close(_HANDED_OVER.pop())
    if hasattr(os, "memfd_create") and os.path.isdir(f"/proc/{os.getpid()}/fd"):
        fd = os.memfd_create("lungtrial-dicom-folders")  # close-on-exec: jobs open it by its /proc path
        os.fchmod(fd, 0o600)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        _HANDED_OVER.append(fd)
        path = f"/proc/{os.getpid()}/fd/{fd}"
    else:
        path = _hand_over_file(payload, Path(tmpdir))
    os.environ[FOLDERS_ENV] = path
    return path


def _hand_over_file(payload: bytes, tmpdir: Path) -> str:
    import atexit

    path = tmpdir / f"lungtrial-dicom-folders.{os.getpid()}.json"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(payload)
    atexit.register(path.unlink, missing_ok=True)
    return os.fspath(path)


def _handed_over(scan_id: str) -> dict:
    source = os.environ.get(FOLDERS_ENV)
    try:
        entry = json.loads(Path(source).read_text())[scan_id] if source else None
    except (OSError, ValueError, KeyError):
        entry = None
    if entry is None:
        raise InputError(
            f"scan {scan_id}: its DICOM folder was not handed over by the workflow ({FOLDERS_ENV}); expected the job "
            "to be started by snakemake"
        )
    return entry


def scan_folder(scan_id: str) -> tuple[Path, str, int | None]:
    """The DICOM folder of one scan as the workflow handed it over (:func:`hand_over_folders`), with the scans
    sheet and row (header = row 1) that name it.

    Raises
    ------
    lungtrial.errors.InputError
        If this process was not started by the workflow or the scan is not in the hand-over.
    """
    entry = _handed_over(scan_id)
    return Path(entry["folder"]), str(entry.get("sheet", "the scans sheet")), entry.get("row")


def existing_scan_folder(scan_id: str) -> Path:
    """:func:`scan_folder`, checked to be an existing folder.

    Raises
    ------
    lungtrial.errors.InputError
        Naming the scans sheet, its row, the scan and its subject (never the path: folder names may identify the
        patient) when the folder does not exist, or as :func:`scan_folder`.
    """
    entry = _handed_over(scan_id)
    folder = Path(entry["folder"])
    if not folder.is_dir():
        sheet, row, subject = entry.get("sheet", "the scans sheet"), entry.get("row"), entry.get("subject")
        raise InputError(
            f"{sheet}, row {row}: dicom_dir of scan {scan_id}{f' (subject {subject})' if subject else ''} is not an "
            "existing folder (expected the scan's DICOM folder; its path is not shown: folder names may identify the "
            "patient)"
        )
    return folder


@contextmanager
def handed_over_lesion_mask(scan_id: str) -> Iterator[Path | None]:
    """The lesion mask (config ``imaging.lesion_masks``) of one scan as the workflow handed it over
    (:func:`hand_over_folders`, key ``lesion_mask``), as a link named by the scan ID (``<scan_id>.nii.gz``, the
    file's own suffix) in a private temporary folder, for as long as the ``with`` block lasts: messages about the
    mask then name the scan, never the file (file names may identify the patient). None when the scan has none.

    Raises
    ------
    lungtrial.errors.InputError
        Naming the config key and the scan (never the path) when the file does not exist, or as :func:`scan_folder`.
    """
    path = _handed_over(scan_id).get("lesion_mask")
    if not path:
        yield None
        return
    source = Path(path)
    if not source.is_file():
        raise InputError(
            f"scan {scan_id}: its lesion mask (config imaging.lesion_masks) is not an existing file (expected a mask "
            "drawn on the scan, e.g. NIfTI; its path is not shown: file names may identify the patient)"
        )
    suffix = "".join(source.suffixes[-2:]) if source.suffix == ".gz" else source.suffix
    with tempfile.TemporaryDirectory(prefix="lungtrial-lesion-mask.") as tmp:
        link = Path(tmp) / f"{scan_id}{suffix}"
        link.symlink_to(source.resolve())
        yield link
