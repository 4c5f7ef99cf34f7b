"""Imaging: one chest CT series from its DICOM folder to lung and opacity measurements.

- :mod:`~lungtrial.imaging.dicom`: header index, series choice and validation, the volume in HU.
- :mod:`~lungtrial.imaging.segmentation`: body, airway, lungs (with an optional serial prior).
- :mod:`~lungtrial.imaging.plausibility`: whether what was found is a pair of lungs.
- :mod:`~lungtrial.imaging.metrics`: HU classes, per-scan and per-region metrics.
- :mod:`~lungtrial.imaging.qc`: the per-scan QC picture.
- :mod:`~lungtrial.imaging.quantify`: one scan from folder to metrics, masks and picture (what the rule and the CLI
  call).
- :func:`hand_over_folders`, :func:`scan_folder`, :func:`existing_scan_folder`, :func:`handed_over_lesion_mask`
  (private module ``_handover``): each scan's DICOM folder handed from the workflow to its jobs, outside
  Snakemake's records.
- :mod:`~lungtrial.imaging.registration`, :mod:`~lungtrial.imaging.change`, :mod:`~lungtrial.imaging.serial`:
  a patient's scans registered onto each other, change maps, the serial prior.
"""

from lungtrial.imaging._handover import (
    FOLDERS_ENV,
    existing_scan_folder,
    hand_over_folders,
    handed_over_lesion_mask,
    scan_folder,
)

__all__ = ["FOLDERS_ENV", "existing_scan_folder", "hand_over_folders", "handed_over_lesion_mask", "scan_folder"]
