"""The scan grid's origin shared by the registration and change-label tests."""

from __future__ import annotations


ORIGIN = (-96.0, -80.0, -70.0)
