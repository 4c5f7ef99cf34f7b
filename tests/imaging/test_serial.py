"""The serial prior through registration (``lungtrial.imaging.serial``): the least-affected scan of a patient,
registered onto a scan with consolidation as dense as the wall, brings that consolidation back into the lungs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from lungtrial.imaging.registration import Grid
from lungtrial.imaging.segmentation import segment
from lungtrial.imaging.serial import least_affected, serial_prior
from phantoms import fraction_inside, make_chest


def test_registered_least_affected_scan_brings_back_dense_consolidation():
    scan = make_chest(table="flat", lesions=("recess", "lateral", "mediastinal"))
    free = make_chest(table="flat")
    # the reference lies elsewhere on the table: moved 3.5 mm up, 7.5 mm back, 6 mm to the right
    ref_hu = ndimage.shift(free.hu.astype(np.float32), (1.4, 3, -2.5), order=1, cval=-1000).round().astype(np.int16)
    ref = segment(ref_hu, free.spacing).labels
    own = segment(scan.hu, scan.spacing).labels
    found = serial_prior(scan.hu, own, Grid.of(scan.hu, scan.spacing), ref_hu, ref, Grid.of(ref_hu, free.spacing))
    assert found.qc["used"] and not found.qc["failed"], found.qc
    assert found.labels.shape == scan.hu.shape
    labels = segment(scan.hu, scan.spacing, prior=found.labels).labels
    for site in ("recess", "lateral", "mediastinal"):
        assert fraction_inside(scan.sites[site], labels) >= 0.8, site
    # the same prior on the lesion-free chest adds nothing
    assert segment(free.hu, free.spacing, prior=found.labels).prior_ml < 5.0


def test_least_affected_scan_per_subject():
    scans = pd.DataFrame(
        {
            "subject_id": ["A", "A", "A", "B", "B", "C"],
            "scan_id": ["A0", "A7", "A28", "B0", "B7", "C0"],
            "study_day": [0, 7, 28, 0, 7, 0],
            "pct_opacity": [12.0, 3.0, 3.0, 8.0, np.nan, 5.0],
            "status": ["ok", "ok", "ok", "ok", "ok", "excluded"],
        }
    )
    ref = least_affected(scans)
    assert ref.to_dict() == {"A": "A28", "B": "B0"}  # ties to the later scan; unmeasured scans never chosen


def test_a_reference_of_another_patient_is_no_prior(monkeypatch):
    """A scans sheet pointing the reference at another subject's folder: the scan is measured alone, with why."""
    import numpy as np
    import pytest

    from lungtrial.imaging import dicom
    from lungtrial.imaging.serial import reference_prior

    keys = {"ref": "k1", "scan": "k2"}
    monkeypatch.setattr(dicom._volume, "patient_key", lambda folder, series: keys[series["which"]])
    monkeypatch.setattr(dicom, "read_volume", lambda *a, **k: pytest.fail("another patient's scan was read"))
    record = {}
    prior = reference_prior("r", {"which": "ref"}, "m", record, same_patient_as=("s", {"which": "scan"}))
    assert prior(None, np.zeros((2, 2, 2), np.uint8)) is None
    assert record["used"] is False and "another patient's images" in record["reason"]


def test_prior_of_scan_decides_without_registering_when_there_is_nothing_to_register():
    """The reference is the least affected measured scan; the reference itself, a scan not measured and a
    reference whose folder is gone are measured alone, with the reason recorded."""
    import pandas as pd

    from lungtrial.errors import InputError
    from lungtrial.imaging.serial import prior_of_scan

    scans = ["S-D0", "S-D7", "S-D14"]
    metrics = [
        pd.DataFrame({"scan_id": [s], "status": ["ok"], "pct_opacity": [p]}) for s, p in zip(scans, (20.0, 8.0, 8.0))
    ]
    series = [{"status": "ok"}, {"status": "ok"}, {"status": "excluded"}]

    def gone(k: int):
        raise InputError(f"scan {scans[k]}: folder missing")

    prior, record = prior_of_scan("S-D14", scans, series, metrics, [None] * 3, gone)
    assert prior is None and record == {
        "scan_id": "S-D14",
        "reference": "S-D14",  # ties go to the later scan
        "used": False,
        "reason": "the scan is not measured",
    }
    series[2] = {"status": "ok"}
    prior, record = prior_of_scan("S-D14", scans, series, metrics, [None] * 3, gone)
    assert prior is None and "least affected" in record["reason"]
    prior, record = prior_of_scan("S-D0", scans, series, metrics, [None] * 3, gone)
    assert prior is None and record["reference"] == "S-D14" and record["reason"] == "scan S-D14: folder missing"
