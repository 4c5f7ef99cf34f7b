"""Fixtures of the lungtrial.imaging.dicom tests: the truth volume, and every ``read_volume`` call read
both ways (plain and through the folder index)."""

from __future__ import annotations

import numpy as np
import pytest

from lungtrial.imaging import dicom

from dicom_files import truth_volume


@pytest.fixture
def truth():
    return truth_volume()


@pytest.fixture(autouse=True)
def read_both_ways(monkeypatch):
    """Every ``read_volume`` call in these tests also runs with the folder index (direct reads at the recorded
    pixel offsets) and must give the same volume, padding and geometry, or the same error."""
    original = dicom.read_volume

    def both(folder, series, **options):
        def run(**extra):
            try:
                return original(folder, series, **options, **extra), None
            except Exception as exc:  # noqa: BLE001 - compared below
                return None, exc

        plain, error = run()
        indexed, indexed_error = run(index=dicom.index_folder(folder))
        assert type(indexed_error) is type(error) and str(indexed_error) == str(error)
        if error is not None:
            raise error
        np.testing.assert_array_equal(indexed.hu, plain.hu)
        assert (indexed.padding is None) == (plain.padding is None)
        if plain.padding is not None:
            np.testing.assert_array_equal(indexed.padding, plain.padding)
        assert indexed.spacing == plain.spacing and indexed.origin == plain.origin
        np.testing.assert_array_equal(indexed.direction, plain.direction)
        return plain

    monkeypatch.setattr(dicom, "read_volume", both)
    return original
