"""lungtrial.errors: what a scan's exclusion carries, and how an error with several problems is worded."""

from __future__ import annotations

import pytest

from lungtrial.errors import MAX_LISTED, InputError, ScanExcluded, problem_list


def test_scan_excluded_names_the_scan_and_every_reason():
    given = ["S1: series has 12 slices; expected at least 20", "no lung found"]
    exc = ScanExcluded("S1", given)
    assert str(exc) == "scan S1 excluded: S1: series has 12 slices; expected at least 20; no lung found"
    assert exc.scan == "S1" and exc.reasons == given
    given.append("later")  # the exception keeps its own list
    assert exc.reasons == ["S1: series has 12 slices; expected at least 20", "no lung found"]
    assert ScanExcluded("S2", ("a", "b")).reasons == ["a", "b"]


def test_scan_excluded_is_caught_as_bad_input():
    """Callers that stop on bad input (InputError) or on any value problem (ValueError) also stop on an exclusion."""
    with pytest.raises(InputError, match="scan S1 excluded: no CT series"):
        raise ScanExcluded("S1", ["no CT series"])
    assert issubclass(ScanExcluded, ValueError) and issubclass(InputError, ValueError)


def test_one_problem_is_its_own_line_without_the_title():
    line = "subjects.csv, row 3: arm 'placbo' (expected one of: control, treated)"
    assert problem_list("subjects sheet is invalid", [line]) == line


def test_several_problems_are_the_title_then_one_indented_line_each_in_order():
    problems = ["labs.csv, row 4: unit 'furlongs'", "labs.csv, row 2: value 'pos' (expected a number)"]
    assert problem_list("2 problem(s) in the lab files", iter(problems)) == (
        "2 problem(s) in the lab files:\n  labs.csv, row 4: unit 'furlongs'\n"
        "  labs.csv, row 2: value 'pos' (expected a number)"
    )


def test_problems_beyond_the_limit_are_counted_not_listed():
    problems = [f"labs.csv, row {r}: unit 'furlongs'" for r in range(2, 2 + MAX_LISTED + 5)]
    lines = problem_list("unit tables are invalid", problems).splitlines()
    assert lines[0] == "unit tables are invalid:"
    assert [line.strip() for line in lines[1:-1]] == problems[:MAX_LISTED]
    assert lines[-1] == "  ... and 5 more"
    assert problem_list("t", problems[:3], limit=3).splitlines()[-1] == f"  {problems[2]}"  # exactly the limit: all
    two = problem_list("t", problems[:3], limit=2).splitlines()
    assert two == ["t:", f"  {problems[0]}", f"  {problems[1]}", "  ... and 1 more"]
