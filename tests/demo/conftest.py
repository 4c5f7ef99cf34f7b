"""Fixtures of the lungtrial.demo tests: the demo trial's design, built once per module."""

from __future__ import annotations

import pytest

from lungtrial.demo import design


@pytest.fixture(scope="module")
def trial():
    return design(n_per_arm=3, seed=20200)
