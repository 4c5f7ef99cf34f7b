"""Imaging: lung segmentation on chest CT, plausibility of the lungs found, (more to move here: dicom reading,
metrics, QC picture, per-scan orchestration)."""
