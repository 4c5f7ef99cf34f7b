"""The demo-trial generator: a deterministic synthetic trial modelled on the phase 1 UC-MSC COVID-19 trial.

``design`` (cheap, numpy/pandas only) lays out subjects and scans; ``write_clinical`` writes the sheets and labs;
``write_scan`` renders one chest CT phantom and writes it as DICOM with its truth; ``generate_trial`` does it all.
``design`` is imported with the package (it needs only numpy and pandas); the heavier modules are imported only
when one of their functions is first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .design import Design, design

__all__ = ["design", "Design", "write_clinical", "write_scan", "generate_trial", "make_chest", "write_series"]

_WHERE = {
    "write_clinical": "clinical",
    "write_scan": "dicomwrite",
    "generate_trial": "dicomwrite",
    "write_series": "dicomwrite",
    "make_chest": "phantom",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
