"""The lab catalogue: analytes (canonical slug, label, synonyms) and the unit spellings each accepts, with
their factors to the canonical unit."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lungtrial.clinical._sheets import _parse_bool, _read_text_table
from lungtrial.errors import InputError, problem_list


def _name_key(text: str) -> str:
    """Matching key of an analyte name: lower case, Greek alpha spelled out, letters and digits only."""
    text = str(text).strip().lower().replace("α", "alpha")
    return re.sub(r"[^0-9a-z]", "", text)


def _unit_key(text: str) -> str:
    """Matching key of a unit spelling: lower case, no spaces, micro as ``u``, ``10*9``/``x10^9`` as ``10^9``."""
    text = str(text).strip().lower()
    for micro in ("µ", "μ"):
        text = text.replace(micro, "u")
    text = re.sub(r"\s+", "", text).replace("×", "x").replace("**", "^").replace("*", "^")
    return re.sub(r"^x(?=10)", "", text)


@dataclass(frozen=True)
class LabCatalog:
    """Known analytes (canonical slug, label, canonical unit), their synonyms and unit conversions.

    Attributes
    ----------
    labels : dict
        Slug -> display label, in the order of the analytes table.
    units : dict
        Slug -> canonical unit (as spelled in the units table).
    names : dict
        Name key (see :mod:`lungtrial.clinical`) -> slug; holds slugs, labels and synonyms.
    factors : dict
        ``(slug, unit key)`` -> factor: value in the canonical unit = value in that unit * factor.
    signed : frozenset
        Slugs whose values can be negative (e.g. base excess); every other analyte's values are counts,
        concentrations or ratios, never below 0.
    """

    labels: dict[str, str]
    units: dict[str, str]
    names: dict[str, str]
    factors: dict[tuple[str, str], float]
    signed: frozenset[str] = frozenset()

    def analyte(self, name: str) -> str | None:
        """Canonical slug of an analyte name or synonym, None when unknown."""
        return self.names.get(_name_key(name))

    def factor(self, slug: str, unit: str) -> float | None:
        """Factor from ``unit`` to the canonical unit of ``slug``, None when the unit is unknown for it."""
        return self.factors.get((slug, _unit_key(unit)))


def load_catalog(units_csv: str | Path, analytes_csv: str | Path) -> LabCatalog:
    """Read the unit table and the analyte (synonym) table.

    Parameters
    ----------
    units_csv : path
        Columns ``analyte, unit, factor, canonical``: one row per accepted unit spelling; exactly one row per
        analyte has ``canonical`` true (and factor 1).
    analytes_csv : path
        Columns ``analyte, label, synonyms``: canonical slug, display label, ``|``-separated synonyms; optional
        ``signed`` (yes/no, default no): the analyte's values can be negative.

    Raises
    ------
    InputError
        A table is malformed (names the file and row).
    """
    analytes = _read_text_table(analytes_csv)
    units = _read_text_table(units_csv)
    problems: list[str] = []
    for path, table, required in (
        (analytes_csv, analytes, ("analyte", "label")),
        (units_csv, units, ("analyte", "unit", "factor", "canonical")),
    ):
        missing = [c for c in required if c not in table.columns]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    labels: dict[str, str] = {}
    names: dict[str, str] = {}
    signed: set[str] = set()
    for _, row in analytes.iterrows():
        slug = str(row["analyte"]).strip()
        if not re.fullmatch(r"[a-z0-9_]+", slug) or slug in labels:
            where = f"{analytes_csv}, row {row['source_row']}"
            problems.append(f"{where}: analyte slug {slug!r} is not a new [a-z0-9_] slug")
            continue
        labels[slug] = str(row["label"]).strip()
        text = row.get("signed")
        if pd.notna(text) and str(text).strip():
            flag = _parse_bool(text)
            if flag is None:
                problems.append(f"{analytes_csv}, row {row['source_row']}: signed {text!r} is not yes or no")
            elif flag:
                signed.add(slug)
        synonyms = row.get("synonyms")
        candidates = [slug, labels[slug], *(str(synonyms).split("|") if pd.notna(synonyms) else [])]
        for name in candidates:
            key = _name_key(name)
            if key and names.setdefault(key, slug) != slug:
                problems.append(f"{analytes_csv}, row {row['source_row']}: synonym {name!r} already names {names[key]}")
    canonical: dict[str, str] = {}
    factors: dict[tuple[str, str], float] = {}
    for _, row in units.iterrows():
        slug = str(row["analyte"]).strip()
        where = f"{units_csv}, row {row['source_row']}"
        if slug not in labels:
            problems.append(f"{where}: analyte {slug!r} is not in {analytes_csv}")
            continue
        try:
            factor = float(row["factor"])
        except (TypeError, ValueError):
            factor = math.nan
        if not math.isfinite(factor) or factor <= 0:
            problems.append(f"{where}: factor {row['factor']!r} is not a positive number")
            continue
        factors[(slug, _unit_key(row["unit"]))] = factor
        if _parse_bool(row["canonical"]):
            if slug in canonical or factor != 1:
                problems.append(f"{where}: a second canonical unit for {slug}, or a canonical factor other than 1")
            canonical[slug] = str(row["unit"]).strip()
    problems += [f"{units_csv}: no canonical unit for analyte {slug}" for slug in labels if slug not in canonical]
    if problems:
        raise InputError(problem_list("unit tables are invalid", problems))
    return LabCatalog(labels=labels, units=canonical, names=names, factors=factors, signed=frozenset(signed))
