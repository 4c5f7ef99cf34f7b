"""Fixtures of the lungtrial.imaging tests: one registered change pair (tests/imaging/change_scans.py), shared by
test_change_pairs.py and test_change_picture.py."""

from __future__ import annotations

import pytest

from lungtrial.imaging import change

from change_scans import BASE_LESIONS, FAST, FOLLOW_LESIONS, _scan


@pytest.fixture(scope="session")
def pair_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pair")
    base = _scan(BASE_LESIONS)
    follow = _scan(FOLLOW_LESIONS, shift_mm=6.0, seed=2)
    result = change.compare_volumes(*base, *follow, out, ids=("S1-D00", "S1-D07"), registration=FAST, threads=1)
    return out, result
