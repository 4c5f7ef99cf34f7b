"""Fixtures shared by the segmentation tests: the default simple analytic chest and its segmentation, built once
per session."""

from __future__ import annotations

import numpy as np
import pytest

from lungtrial.imaging.segmentation import segment_lungs
from simple_chest import Chest, make_simple_chest


@pytest.fixture(scope="session")
def chest() -> Chest:
    return make_simple_chest()


@pytest.fixture(scope="session")
def seg(chest) -> np.ndarray:
    return segment_lungs(chest.hu, chest.spacing)
