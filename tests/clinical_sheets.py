"""Small clinical sheets for the tests of lungtrial.clinical and of the clinical rules: the repository's
unit catalogue, the visit windows, and lab sheets written to ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

from lungtrial import clinical


RESOURCES = Path(__file__).resolve().parents[1] / "resources"
VISITS = {"baseline": [-3, 1], "day7": [5, 10], "day14": [11, 18], "day28": [24, 35]}


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


def labs_file(tmp_path, rows: str, name="labs.csv") -> Path:
    return write(tmp_path / name, "subject_id,datetime,analyte,value,unit\n" + rows.strip())


def read(tmp_path, subjects, catalog, rows, **kw):
    return clinical.read_labs([labs_file(tmp_path, rows)], subjects, catalog, visits=VISITS, **kw)
