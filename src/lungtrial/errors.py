"""Exceptions shared by the library.

Messages must name the file, the row or tag, and what was expected; they must never contain patient identifiers.
Rows are numbered as a spreadsheet shows them: the header is row 1, the first data row is row 2. One problem is one
line: ``<file>, row <n>: <column> '<value>' (expected <what>)``.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_LISTED = 20
"""Most problem lines one error lists; the rest are counted (a column with one mistake in every row)."""


class InputError(ValueError):
    """Input data (a sheet, a lab file, a DICOM file) is not what the workflow expects."""


class ScanExcluded(InputError):
    """A scan cannot be measured reliably; ``reasons`` lists why (one short sentence each)."""

    def __init__(self, scan: str, reasons: list[str]):
        self.scan = scan
        self.reasons = list(reasons)
        super().__init__(f"scan {scan} excluded: " + "; ".join(self.reasons))


def problem_list(title: str, problems: Sequence[str], limit: int = MAX_LISTED) -> str:
    """The message of an error with several problems: ``title`` then one indented line per problem.

    Parameters
    ----------
    title : str
        What was checked, e.g. ``"subjects sheet is invalid"``; left out when there is one problem (its line says
        where and what on its own).
    problems : sequence of str
        One line each, in the order to show.
    limit : int
        At most this many lines are listed, then ``... and N more``.
    """
    problems = list(problems)
    if len(problems) == 1:
        return problems[0]
    shown = problems[:limit]
    more = [f"... and {len(problems) - limit} more"] if len(problems) > limit else []
    return f"{title}:\n  " + "\n  ".join([*shown, *more])
