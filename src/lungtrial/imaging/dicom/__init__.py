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

One private module per step, everything public re-exported here:

- ``_index``: the header index (:func:`index_folder`), files numbered in the folder's listing;
- ``_series``: the series choice (:func:`choose_series`);
- ``_checks``: the checks of the chosen series (:func:`check_series`, :class:`QCIssue`);
- ``_ingest``: the three together, the content of ``series.json`` (:func:`ingest`);
- ``_geometry``: slice normal and order, the reoriented volume's geometry;
- ``_pixels``: stored pixel values to HU (rescale or modality LUT, padding);
- ``_volume``: the series read into one volume, file by file through pydicom (:func:`read_volume`,
  :class:`CTVolume`);
- ``_fingerprint``: :func:`folder_fingerprint`;
- ``_values``: reading a dataset and its values (shared by the steps).

The speed paths beside pydicom live in their own modules, each with a switch (``ENABLED``) and the figure of the
benchmark that keeps it: ``_rawheader`` (plain header values decoded from their bytes while indexing) and
``_directread`` (pixel data read at the offset the index recorded, without a second header parse).
"""

from __future__ import annotations

from ._checks import QCIssue, check_series
from ._fingerprint import folder_fingerprint
from ._index import CT_IMAGE_STORAGE, DICOMDIR_STORAGE, ENHANCED_CT_STORAGE, INDEX_COLUMNS, index_folder
from ._ingest import ingest
from ._pixels import PADDING_BELOW_HU, PADDING_FILL_HU
from ._series import SeriesChoice, choose_series
from ._volume import CTVolume, other_patients, patient_key, read_volume

__all__ = [
    "CT_IMAGE_STORAGE",
    "DICOMDIR_STORAGE",
    "ENHANCED_CT_STORAGE",
    "INDEX_COLUMNS",
    "PADDING_BELOW_HU",
    "PADDING_FILL_HU",
    "CTVolume",
    "QCIssue",
    "SeriesChoice",
    "check_series",
    "choose_series",
    "folder_fingerprint",
    "index_folder",
    "ingest",
    "other_patients",
    "patient_key",
    "read_volume",
]
