"""Exceptions shared by the library.

Messages must name the file, the row or tag, and what was expected; they must never contain patient identifiers.
"""


class InputError(ValueError):
    """Input data (a sheet, a lab file, a DICOM file) is not what the workflow expects."""


class ScanExcluded(InputError):
    """A scan cannot be measured reliably; ``reasons`` lists why (one short sentence each)."""

    def __init__(self, scan: str, reasons: list[str]):
        self.scan = scan
        self.reasons = list(reasons)
        super().__init__(f"scan {scan} excluded: " + "; ".join(self.reasons))
