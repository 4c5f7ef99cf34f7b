"""The trial's analysis plan (config ``analysis:``): outcomes, visits, baseline, censoring, multiplicity; running it.

The plan is declared per trial in ``config/config.yaml`` (documented in ``config/README.md``); nothing about a
trial's outcomes lives in the library. :func:`load_plan` reads and checks it (every error names the config key);
:func:`run_plan` runs every declared comparison on the clinical stage's tables and returns the result tables:

- ``primary``: the one primary endpoint (its row of ``outcomes`` with the model's details);
- ``outcomes``: one row per comparison, primary first, then secondary, then exploratory, with the raw p value and
  the p value adjusted within the outcome's multiplicity family side by side;
- ``binary``, ``continuous``, ``imaging_change``, ``survival``: the detailed tables by outcome type, with the same
  role, family and adjusted p columns;
- ``competing_risk`` (only when the plan names a death column, ``analysis.death_column``): the cumulative incidence
  of each time-to-event outcome with death as a competing event, per arm, and Gray's test between the arms
  (:func:`competing_risk_outcomes`).

Outcome types and their analyses:

``binary``
    Subjects-sheet column (true/false; or ``level``: the event is the column taking that level, e.g. the highest
    oxygen support), or ``source: adverse_events`` (at least one adverse event). Events n/N per arm, two-sided
    Fisher's exact test, odds ratio treatment vs reference (:func:`lungtrial.stats.compare_binary`).
``continuous``, ``count``
    A subjects-sheet column, or a lab ``analyte`` ``at`` ``discharge`` (each subject's last value) or at a visit.
    Median (IQR) per arm, two-sided Mann-Whitney U and the Hodges-Lehmann shift (on the log scale a ratio) with its
    Moses interval. A lab at a visit may instead be analysed as change from baseline by ANCOVA (``analysis: ancova``).
``imaging``
    A scans-table metric, as change from baseline at each of its ``visits``: ANCOVA on baseline (default) or the
    Mann-Whitney U / Hodges-Lehmann comparison of the changes (``analysis: mann-whitney``). Or, with
    ``source: change``, a change-map endpoint: a column of the change table (``results/imaging/change.csv``, one
    row per follow-up CT registered onto the subject's baseline CT, :func:`lungtrial.imaging.change.change_table`),
    e.g. ``resolved_fraction`` or ``new_lesion_ml``, at each of its ``visits``. Such a value already compares the
    visit with baseline and has no baseline value of its own, so it is compared by Mann-Whitney U and the
    Hodges-Lehmann shift only; pairs that were not compared (registration failed, a scan excluded) or whose
    baseline CT is not the subject's baseline scan are left out and counted in ``note``.
``time-to-event``
    Duration column (days) and ``event`` column of the subjects table; Kaplan-Meier median per arm, the log-rank
    test and the Cox hazard ratio (not estimable, with the reason, when the arms separate). All subjects count,
    those without the event censored at their last contact; with a death column, death is also a competing event
    (Aalen-Johansen cumulative incidence).

ANCOVA (:func:`ancova`): ordinary least squares of the change from baseline on the baseline value and the arm
(statsmodels OLS), the arm coefficient being the difference in adjusted mean change, treatment - reference, with
its t-based confidence interval; on the log scale the model is fitted to log values and the difference is
reported as a ratio of geometric means.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lungtrial.clinical._columns import DERIVED_SUBJECT_COLUMNS
from lungtrial.errors import InputError
from lungtrial.stats._censoring import CENSOR_RULES, DEFAULT_CENSOR_RULE

OUTCOME_TYPES = ("binary", "continuous", "count", "time-to-event", "imaging")
"""Outcome types of the analysis plan."""

ROLES = ("primary", "secondary", "exploratory")
"""Roles of an outcome, in the order the outputs list them."""

ANALYSES = {
    "binary": ("fisher",),
    "continuous": ("mann-whitney", "ancova"),
    "count": ("mann-whitney",),
    "imaging": ("ancova", "mann-whitney"),
    "time-to-event": ("logrank",),
}
"""Analyses allowed per outcome type; the first is the default."""

MULTIPLICITY = {"holm": "holm", "benjamini-hochberg": "fdr_bh", "none": None}
"""Multiplicity methods of the config -> statsmodels ``multipletests`` method (None: unadjusted)."""

MULTIPLICITY_LABEL = {"holm": "Holm", "benjamini-hochberg": "Benjamini-Hochberg (false discovery rate)"}

CENSORING_RULES = tuple(CENSOR_RULES)
"""Rules for censored lab values (:data:`lungtrial.stats.CENSOR_RULES`)."""

COVARIANCE_CHOICES = ("unstructured", "compound-symmetry", "ar1", "random-intercept", "random-slope")
"""Covariances of the visit-factor mixed models (config ``analysis.covariance``), as
:data:`lungtrial.stats.COVARIANCES`."""

DEFAULT_COVARIANCE = "unstructured"
"""The plan's default: an unstructured covariance across visits (MMRM), the usual prespecified choice; on the demo
trial it fits the imaging metrics far better than a random intercept (REML AIC 314 vs 362 for opacity), whose one
variance for every visit misstates the per-visit standard errors (opacity: 1.96 at every visit vs 2.89 at day 7 and
0.68 at day 28)."""

_TIME_TO_EVENT_DURATIONS = ("days_to_discharge", "days_to_symptom_resolution")
_CONDITIONAL_ON_EVENT = {"length_of_stay_days": "days_to_discharge"}
"""Derived subject columns defined only for subjects with an event -> the time-to-event duration to compare instead."""
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


# ---------------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Outcome:
    """One outcome of the analysis plan.

    Attributes
    ----------
    name : str
        Identifier in the result tables (``[a-z][a-z0-9_]*``).
    type : str
        One of :data:`OUTCOME_TYPES`.
    label : str
        Text shown in tables and the report.
    role : str
        ``primary``, ``secondary`` or ``exploratory``.
    family : str
        Multiplicity family; p values are adjusted within it.
    unit : str
        Unit of the values (of the change for change from baseline); ``""`` for binary outcomes.
    scale : str
        ``linear`` or ``log``, fixed in advance: on the log scale differences become ratios.
    analysis : str
        One of :data:`ANALYSES` for the type.
    column : str or None
        Subjects-sheet column (binary, continuous, count, time-to-event duration) or scans-table metric (imaging).
    level : str or None
        Binary: the event is ``column == level`` (compared without regard to case).
    source : str
        ``subjects``, ``adverse_events``, ``labs``, ``scans`` or ``change`` (the change table of the change maps).
    analyte : str or None
        Lab analyte slug (``source == "labs"``).
    at : str or None
        Labs: ``discharge`` (each subject's last value) or a visit name.
    visits : tuple of str
        Imaging: the visits at which the change from baseline is compared.
    event : str or None
        Time-to-event: the event column (true: event, false: censored at the duration).
    key : str
        Where the outcome is declared (``analysis.outcomes[i]``), for error messages.
    """

    name: str
    type: str
    label: str
    role: str = "exploratory"
    family: str = "exploratory"
    unit: str = ""
    scale: str = "linear"
    analysis: str = ""
    column: str | None = None
    level: str | None = None
    source: str = "subjects"
    analyte: str | None = None
    at: str | None = None
    visits: tuple[str, ...] = ()
    event: str | None = None
    key: str = ""


@dataclass(frozen=True)
class Plan:
    """The analysis plan of a trial (config ``analysis:``).

    Attributes
    ----------
    outcomes : tuple of Outcome
        In the order declared (expanded per level).
    visits : tuple of str
        Analysed visits of ``clinical.visits``, baseline first.
    first_dose_time : str
        ``HH:MM`` of the first dose on day 0; a lab value is baseline only when taken before it.
    baseline_lookback_days : float
        A subject without a pre-dose value in the baseline window gets the last one up to this many days before
        day 0 instead, flagged in the tables (0: none).
    censoring : str
        One of :data:`CENSORING_RULES`.
    multiplicity : dict
        Family -> method (:data:`MULTIPLICITY`); families not listed use ``default_method``.
    default_method : str
        Multiplicity method of families not listed.
    death_column : str or None
        Subjects-sheet column with the study day of death (days from day 0; empty: alive at the last contact).
        Death then competes with every time-to-event outcome (:func:`competing_risk_outcomes`). None: the trial
        records no deaths.
    scales : dict
        Scale (``linear`` or ``log``) of longitudinal outcomes (imaging metric or lab analyte) in the mixed
        models, fixed in advance (:meth:`model_scales` adds the scales the outcomes declare).
    covariance : dict
        Covariance of the visit-factor mixed models (:data:`lungtrial.stats.COVARIANCES`): ``default`` for every
        outcome, and per outcome (imaging metric or lab analyte) where it differs (:meth:`model_covariance`).
    """

    outcomes: tuple[Outcome, ...]
    visits: tuple[str, ...]
    first_dose_time: str = "00:00"
    baseline_lookback_days: float = 0.0
    censoring: str = DEFAULT_CENSOR_RULE
    multiplicity: dict[str, str] = field(default_factory=dict)
    default_method: str = "holm"
    death_column: str | None = None
    scales: dict[str, str] = field(default_factory=dict)
    covariance: dict[str, str] = field(default_factory=lambda: {"default": DEFAULT_COVARIANCE})

    @property
    def baseline_visit(self) -> str:
        """The baseline visit (the first analysed visit)."""
        return self.visits[0]

    @property
    def primary(self) -> Outcome | None:
        """The primary endpoint (None when the plan declares no outcome)."""
        return next((o for o in self.outcomes if o.role == "primary"), None)

    @property
    def first_dose_day(self) -> float:
        """The first dose as a study day (days from midnight of day 0, e.g. 0.375 for 09:00)."""
        hours, minutes = (int(x) for x in self.first_dose_time.split(":"))
        return (hours * 60 + minutes) / 1440.0

    def method(self, family: str) -> str:
        """Multiplicity method of a family."""
        return self.multiplicity.get(family, self.default_method)

    def of_type(self, *types: str) -> list[Outcome]:
        """The outcomes of the given types, in plan order."""
        return [o for o in self.outcomes if o.type in types]

    def subject_columns(self) -> dict[str, str]:
        """Subjects-sheet columns the plan reads, with their kind (``bool``, ``number``, ``text``).

        The clinical stage keeps these columns of the sheet (every other column is dropped) and checks their values.
        Columns derived by the clinical stage (:data:`lungtrial.clinical.DERIVED_SUBJECT_COLUMNS`) are left out.
        """
        kinds: dict[str, str] = {}
        for o in self.outcomes:
            if o.source != "subjects":
                continue
            if o.type == "binary":
                kinds[o.column] = "text" if o.level is not None else "bool"
            elif o.type in ("continuous", "count", "time-to-event"):
                kinds[o.column] = "number"
            if o.event:
                kinds[o.event] = "bool"
        if self.death_column:
            kinds[self.death_column] = "number"
        return {c: k for c, k in kinds.items() if c not in DERIVED_SUBJECT_COLUMNS}

    def imaging_metrics(self) -> list[str]:
        """The scans-table metrics of the imaging outcomes, each once, in plan order (change-map endpoints are not
        scans-table metrics)."""
        return list(dict.fromkeys(o.column for o in self.of_type("imaging") if o.source == "scans"))

    def change_endpoints(self) -> list[Outcome]:
        """The outcomes read from the change maps' table (``source: change``), in plan order."""
        return [o for o in self.outcomes if o.source == "change"]

    def time_to_event(self) -> dict[str, tuple[str, str, str]]:
        """Time-to-event outcomes as name -> (label, duration column, event column), in plan order."""
        return {o.name: (o.label, o.column, o.event) for o in self.of_type("time-to-event")}

    def model_scales(self) -> dict[str, str]:
        """Scale per longitudinal outcome of the mixed models: ``analysis.scales``, then the scale each imaging
        outcome (by metric) and lab outcome (by analyte) declares; an outcome in neither is left to the models."""
        declared = {o.column if o.type == "imaging" else o.analyte: o.scale for o in self.outcomes
                    if o.source in ("scans", "labs")}
        return {**declared, **self.scales}

    def model_covariance(self) -> dict[str, str]:
        """Covariance of the visit-factor mixed models: ``{"default": structure, metric or analyte: structure}``
        (:func:`lungtrial.stats.mixed_models`' ``covariance``)."""
        return {"default": DEFAULT_COVARIANCE, **self.covariance}


def _fail(key: str, message: str) -> InputError:
    return InputError(f"config {key}: {message}")


def _text(item: Mapping, key: str, name: str, required: bool = False) -> str | None:
    value = item.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _fail(f"{key}.{name}", "missing (see config/README.md, analysis plan)")
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise _fail(f"{key}.{name}", f"expected text, got {value!r}")
    return str(value).strip()


def _choice(value: str | None, key: str, allowed: Sequence[str], default: str) -> str:
    value = default if value is None else value
    if value not in allowed:
        raise _fail(key, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _outcomes(item: Mapping, key: str, visit_names: Sequence[str]) -> list[Outcome]:
    """The outcome(s) declared by one entry of ``analysis.outcomes`` (one per level when ``levels`` is given)."""
    if not isinstance(item, Mapping):
        raise _fail(key, f"expected a mapping with name, type, label..., got {item!r}")
    known = {
        "name", "type", "label", "role", "family", "unit", "scale", "analysis", "column", "level", "levels",
        "source", "analyte", "at", "visits", "event",
    }
    unknown = sorted(set(item) - known)
    if unknown:
        raise _fail(key, f"unknown key(s) {', '.join(unknown)} (expected some of {', '.join(sorted(known))})")
    name = _text(item, key, "name", required=True)
    if not _NAME_RE.match(name):
        raise _fail(f"{key}.name", f"{name!r} is not a name of lower-case letters, digits and _")
    kind = _choice(_text(item, key, "type", required=True), f"{key}.type", OUTCOME_TYPES, "")
    role = _choice(_text(item, key, "role"), f"{key}.role", ROLES, "exploratory")
    scale = _choice(_text(item, key, "scale"), f"{key}.scale", ("linear", "log"), "linear")
    analysis = _choice(_text(item, key, "analysis"), f"{key}.analysis", ANALYSES[kind], ANALYSES[kind][0])
    source = _text(item, key, "source") or {"imaging": "scans"}.get(kind, "labs" if item.get("analyte") else "subjects")
    allowed_sources = {
        "binary": ("subjects", "adverse_events"),
        "continuous": ("subjects", "labs"),
        "count": ("subjects",),
        "time-to-event": ("subjects",),
        "imaging": ("scans", "change"),
    }[kind]
    source = _choice(source, f"{key}.source", allowed_sources, allowed_sources[0])
    if source == "change":  # a change-map endpoint: no baseline value to adjust for, values may be 0
        if _text(item, key, "analysis") not in (None, "mann-whitney"):
            raise _fail(f"{key}.analysis", f"{analysis!r}: a change-map endpoint (source: change) has no baseline "
                                           "value to adjust for; it is compared by mann-whitney")
        if scale != "linear":
            raise _fail(f"{key}.scale", "a change-map endpoint (source: change) is compared on its own scale "
                                        "(linear): its values can be 0")
        analysis = "mann-whitney"
    common = {
        "name": name,
        "type": kind,
        "label": _text(item, key, "label", required=True),
        "role": role,
        "family": _text(item, key, "family") or role,
        "unit": _text(item, key, "unit") or "",
        "scale": scale,
        "analysis": analysis,
        "source": source,
        "key": key,
    }
    column = _text(item, key, "column", required=source in ("subjects", "scans", "change"))
    if kind == "binary" and scale == "log":
        raise _fail(f"{key}.scale", "a binary outcome has no scale (odds ratios are always ratios)")
    if kind == "continuous" and source == "subjects" and column in _TIME_TO_EVENT_DURATIONS:
        raise _fail(
            f"{key}.column",
            f"{column} is censored for subjects without the event; declare it as type time-to-event "
            "(comparing only subjects with the event conditions on a post-randomisation outcome)",
        )
    if kind in ("continuous", "count") and source == "subjects" and column in _CONDITIONAL_ON_EVENT:
        raise _fail(
            f"{key}.column",
            f"{column} is empty for subjects without the event (conditioned on a post-randomisation outcome); "
            f"compare {_CONDITIONAL_ON_EVENT[column]} as type time-to-event instead",
        )
    if kind == "time-to-event":
        event = _text(item, key, "event", required=True)
        return [Outcome(**common, column=column, event=event)]
    if kind == "imaging":
        visits = item.get("visits") or list(visit_names[1:])
        if isinstance(visits, str):
            visits = [visits]
        bad = [v for v in visits if v not in visit_names[1:]]
        if bad:
            raise _fail(
                f"{key}.visits",
                f"{', '.join(map(str, bad))} not among the analysed visits after baseline "
                f"({', '.join(visit_names[1:])}; analysis.visits)",
            )
        return [Outcome(**common, column=column, visits=tuple(visits))]
    if source == "labs":
        analyte = _text(item, key, "analyte", required=True)
        at = _text(item, key, "at") or "discharge"
        if at != "discharge" and at not in visit_names:
            raise _fail(f"{key}.at", f"{at!r} is neither 'discharge' nor an analysed visit ({', '.join(visit_names)})")
        if analysis == "ancova" and at in ("discharge", visit_names[0]):
            raise _fail(f"{key}.analysis", "ancova compares the change from baseline: give 'at' a visit after baseline")
        return [Outcome(**common, analyte=analyte, at=at)]
    if analysis == "ancova":
        raise _fail(f"{key}.analysis", "ancova needs a lab analyte at a visit (source: labs) or an imaging outcome")
    if kind == "binary" and source == "subjects" and (item.get("levels") or item.get("level") is not None):
        levels = item.get("levels") or [item.get("level")]
        if isinstance(levels, str):
            levels = [levels]
        out = []
        for level in levels:
            level = str(level)
            suffix = re.sub(r"[^a-z0-9]+", "_", level.lower()).strip("_")
            many = len(levels) > 1
            out.append(
                Outcome(
                    **{
                        **common,
                        "name": f"{name}_{suffix}" if many else name,
                        "label": f"{common['label']}: {level}" if many else common["label"],
                    },
                    column=column,
                    level=level,
                )
            )
        return out
    return [Outcome(**common, column=column)]


def load_plan(analysis: Mapping | None, visit_windows: Mapping[str, Sequence[float]]) -> Plan:
    """Read and check the config's ``analysis:`` section.

    Parameters
    ----------
    analysis : mapping or None
        ``config["analysis"]`` (None or empty: a plan without outcomes).
    visit_windows : mapping
        ``config["clinical"]["visits"]``: visit name -> inclusive study-day window; the analysed visits must be
        among them and the baseline window must contain day 0.

    Returns
    -------
    Plan

    Raises
    ------
    InputError
        One line naming the config key, the value and what was expected: an unknown type, role, scale, analysis
        or multiplicity method, a visit not in ``clinical.visits``, two outcomes with one name, no or several
        primary endpoints, a primary endpoint without a p value to report.
    """
    analysis = dict(analysis or {})
    names = sorted(visit_windows, key=lambda v: float(visit_windows[v][0]))
    visits = analysis.get("visits") or names
    bad = [v for v in visits if v not in visit_windows]
    if bad:
        raise _fail("analysis.visits", f"{', '.join(map(str, bad))} not in clinical.visits ({', '.join(names)})")
    visits = sorted(visits, key=lambda v: float(visit_windows[v][0]))
    if visits:
        lo, hi = (float(x) for x in visit_windows[visits[0]])
        if not lo <= 0 <= hi:
            raise _fail(
                "analysis.visits",
                f"the first visit {visits[0]!r} (study days {lo:g} to {hi:g}) is baseline and must contain day 0",
            )
    dose_time = str(analysis.get("first_dose_time", "00:00"))
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", dose_time):
        raise _fail("analysis.first_dose_time", f"{dose_time!r} is not a time of day HH:MM")
    lookback = analysis.get("baseline_lookback_days", 0)
    if not isinstance(lookback, (int, float)) or isinstance(lookback, bool) or lookback < 0:
        raise _fail("analysis.baseline_lookback_days", f"{lookback!r} is not a number of days >= 0")
    censoring = _choice(analysis.get("censoring"), "analysis.censoring", CENSORING_RULES, DEFAULT_CENSOR_RULE)
    mult = dict(analysis.get("multiplicity") or {})
    default_method = _choice(mult.get("method"), "analysis.multiplicity.method", tuple(MULTIPLICITY), "holm")
    families = dict(mult.get("families") or {})
    for family, method in families.items():
        _choice(method, f"analysis.multiplicity.families.{family}", tuple(MULTIPLICITY), "holm")
    outcomes: list[Outcome] = []
    for i, item in enumerate(analysis.get("outcomes") or []):
        outcomes += _outcomes(item, f"analysis.outcomes[{i}]", visits)
    seen: dict[str, str] = {}
    for o in outcomes:
        if o.name in seen:
            raise _fail(f"{o.key}.name", f"{o.name!r} is already the name of {seen[o.name]}")
        seen[o.name] = o.key
    primary = [o for o in outcomes if o.role == "primary"]
    if outcomes and len(primary) != 1:
        raise _fail(
            "analysis.outcomes",
            f"expected exactly one outcome with role: primary, found {len(primary)}"
            + (f" ({', '.join(o.name for o in primary)})" if primary else ""),
        )
    if primary and primary[0].type == "imaging" and len(primary[0].visits) != 1:
        raise _fail(f"{primary[0].key}.visits", "the primary endpoint is compared at one visit: give one visit")
    death = analysis.get("death_column")
    if death is not None and (not isinstance(death, str) or not death.strip()):
        raise _fail("analysis.death_column", f"{death!r} is not a column name of the subjects sheet")
    if death is not None and death.strip() in DERIVED_SUBJECT_COLUMNS:
        raise _fail("analysis.death_column", f"{death!r} is derived by the clinical stage; name the sheet's column")
    scales = analysis.get("scales") or {}
    if not isinstance(scales, Mapping):
        raise _fail("analysis.scales", f"expected a mapping of outcome (metric or analyte) to linear or log, got "
                                       f"{scales!r}")
    scales = {str(k): _choice(v, f"analysis.scales.{k}", ("linear", "log"), "linear") for k, v in scales.items()}
    covariance = analysis.get("covariance") or {}
    if isinstance(covariance, str):
        covariance = {"default": covariance}
    if not isinstance(covariance, Mapping):
        raise _fail("analysis.covariance", f"expected one of {', '.join(COVARIANCE_CHOICES)} or a mapping of outcome "
                                           f"(metric or analyte, or default) to one of them, got {covariance!r}")
    covariance = {str(k): _choice(v, "analysis.covariance" + ("" if isinstance(analysis.get("covariance"), str)
                                                              else f".{k}"), COVARIANCE_CHOICES, DEFAULT_COVARIANCE)
                  for k, v in covariance.items()}
    unknown_families = sorted(set(families) - {o.family for o in outcomes})
    if unknown_families:
        raise _fail(
            "analysis.multiplicity.families",
            f"{', '.join(unknown_families)} is not the family of any outcome "
            f"({', '.join(sorted({o.family for o in outcomes}))})",
        )
    return Plan(
        outcomes=tuple(outcomes),
        visits=tuple(visits),
        first_dose_time=dose_time,
        baseline_lookback_days=float(lookback),
        censoring=censoring,
        multiplicity=families,
        default_method=default_method,
        death_column=death.strip() if death else None,
        scales=scales,
        covariance={"default": DEFAULT_COVARIANCE, **covariance},
    )


def check_columns(
    plan: Plan,
    subjects: pd.DataFrame,
    scans: pd.DataFrame | None = None,
    source: str = "",
    change: pd.DataFrame | None = None,
) -> None:
    """Raise :class:`InputError` when a column the plan names is missing from the subjects, scans or change table."""
    for o in plan.outcomes:
        if o.source == "change":
            if change is not None and o.column not in change.columns:
                raise InputError(
                    f"{source + ': ' if source else ''}change table: column {o.column!r} named by config {o.key} "
                    f"({o.name}) is missing (expected a column of results/imaging/change.csv, e.g. resolved_fraction "
                    "or new_lesion_ml)"
                )
            continue
        table, cols = ("scans table", scans) if o.source == "scans" else ("subjects table", subjects)
        if cols is None or o.source in ("labs", "adverse_events"):
            continue
        for col in (o.column, o.event):
            if col is not None and col not in cols.columns:
                where = f"{source}: " if source else ""
                raise InputError(
                    f"{where}{table}: column {col!r} named by config {o.key} ({o.name}) is missing "
                    f"(expected a column of the {table.split()[0]} sheet or table)"
                )
    if plan.death_column and plan.death_column not in subjects.columns:
        where = f"{source}: " if source else ""
        raise InputError(
            f"{where}subjects table: column {plan.death_column!r} named by config analysis.death_column is missing "
            "(expected the study day of death, empty for subjects alive at the last contact)"
        )


# ------------------------------------------------------------------------------------------------------ ANCOVA
def ancova(
    data: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    log: bool = False,
) -> dict[str, object]:
    """ANCOVA of the change from baseline on baseline and arm (statsmodels OLS), the arm difference with its CI.

    The model is ``change ~ baseline + treated`` with ``change = value - baseline`` and ``treated`` 1 for the
    treatment arm; the ``treated`` coefficient is the difference in mean change adjusted for baseline,
    treatment - reference (the same coefficient as in ``value ~ baseline + treated``). Inference uses the
    t distribution with ``n - 3`` degrees of freedom, as R's ``lm``.

    Parameters
    ----------
    data : DataFrame
        ``subject_id, arm, baseline, value`` (one row per subject, in the outcome's unit).
    reference, treatment : str
        Arm names.
    min_per_arm : int
        No model when an arm has fewer subjects with both values.
    confidence : float
        Confidence level of the interval.
    log : bool
        Fit on natural-log values (baseline and value must be positive); the difference is then reported as the
        ratio of geometric means (exp of the coefficient), in ``estimate``, ``ci_low``, ``ci_high``.

    Returns
    -------
    dict
        ``n_reference, n_treatment, mean_change_reference, mean_change_treatment`` (raw means, unit of the
        outcome; on the log scale the geometric mean ratio value / baseline), ``estimate, std_error, t_value, df,
        ci_low, ci_high, p_value, baseline_slope, effect, test, note``.
    """
    import statsmodels.api as sm

    d = data.loc[data["arm"].astype(str).isin([reference, treatment])].copy()
    d["baseline"] = pd.to_numeric(d["baseline"], errors="coerce")
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    d = d.dropna(subset=["baseline", "value"])
    notes = []
    if log:
        positive = (d["baseline"] > 0) & (d["value"] > 0)
        if (~positive).any():
            notes.append(f"{int((~positive).sum())} subject(s) without positive values left out of the log scale")
        d = d.loc[positive]
        d["baseline"], d["value"] = np.log(d["baseline"]), np.log(d["value"])
    d["change"] = d["value"] - d["baseline"]
    d["treated"] = (d["arm"].astype(str) == treatment).astype(float)
    n_ref, n_trt = int((d["treated"] == 0).sum()), int((d["treated"] == 1).sum())
    effect = (
        "ratio of geometric means of value / baseline, adjusted for baseline (treatment / reference)"
        if log
        else "difference in mean change adjusted for baseline (treatment - reference)"
    )
    row: dict[str, object] = {
        "n_reference": n_ref,
        "n_treatment": n_trt,
        "mean_change_reference": math.nan,
        "mean_change_treatment": math.nan,
        "estimate": math.nan,
        "std_error": math.nan,
        "t_value": math.nan,
        "df": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": math.nan,
        "baseline_slope": math.nan,
        "effect": effect,
        "test": "ANCOVA: change ~ baseline + arm (OLS, t test with n - 3 df)",
        "note": "",
    }
    for key, arm_flag in (("reference", 0.0), ("treatment", 1.0)):
        mean = float(d.loc[d["treated"] == arm_flag, "change"].mean()) if len(d) else math.nan
        row[f"mean_change_{key}"] = math.exp(mean) if log and np.isfinite(mean) else mean
    small = [f"{arm} has n={n}" for arm, n in ((reference, n_ref), (treatment, n_trt)) if n < max(min_per_arm, 2)]
    if small:
        notes.insert(0, "not tested: " + ", ".join(small) + f" with baseline and value (min_per_arm={min_per_arm})")
        row["note"] = "; ".join(notes)
        return row
    x = sm.add_constant(d[["baseline", "treated"]].to_numpy(dtype=float), has_constant="add")
    fit = sm.OLS(d["change"].to_numpy(dtype=float), x).fit()
    lo, hi = fit.conf_int(alpha=1.0 - confidence)[2]
    est = float(fit.params[2])
    transform = math.exp if log else float
    row |= {
        "estimate": transform(est),
        "std_error": float(fit.bse[2]),
        "t_value": float(fit.tvalues[2]),
        "df": float(fit.df_resid),
        "ci_low": transform(float(lo)),
        "ci_high": transform(float(hi)),
        "p_value": float(fit.pvalues[2]),
        "baseline_slope": float(fit.params[1]),
        "note": "; ".join(notes),
    }
    return row


# ---------------------------------------------------------------------------------------------- multiplicity
def adjust(p_values: Sequence[float], method: str) -> np.ndarray:
    """P values adjusted for multiplicity within one family (statsmodels ``multipletests``).

    Parameters
    ----------
    p_values : sequence of float
        Raw p values; NaN (not tested) stays NaN and does not count towards the family's size.
    method : str
        ``holm``, ``benjamini-hochberg`` or ``none`` (:data:`MULTIPLICITY`).
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if MULTIPLICITY[method] is None or not ok.any():
        out[ok] = p[ok]
        return out
    out[ok] = multipletests(p[ok], method=MULTIPLICITY[method])[1]
    return out


def adjustment_text(method: str, n: int) -> str:
    """How a family's p values were adjusted, e.g. ``"Holm, 4 tests in family"``."""
    if MULTIPLICITY[method] is None:
        return "none (unadjusted)"
    if n <= 1:
        return "none needed (only test in family)"
    return f"{MULTIPLICITY_LABEL[method]}, {n} tests in family"


def adjust_families(table: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """``table`` (columns ``family``, ``p_value``) with ``p_adjusted`` and ``adjustment`` per family."""
    table = table.copy()
    table["p_adjusted"] = np.nan
    table["adjustment"] = ""
    for family, idx in table.groupby("family", sort=False).groups.items():
        method = plan.method(str(family))
        p = table.loc[idx, "p_value"].astype(float)
        table.loc[idx, "p_adjusted"] = adjust(p, method)
        table.loc[idx, "adjustment"] = adjustment_text(method, int(np.isfinite(p).sum()))
    return table


# ----------------------------------------------------------------------------------------------- running it
def _role_columns(o: Outcome) -> dict[str, object]:
    return {"role": o.role, "family": o.family, "outcome": o.name, "label": o.label}


def _changes(
    frame: pd.DataFrame,
    value_col: str,
    visit: str,
    plan: Plan,
    by: str = "subject_id",
    timed: bool = False,
    carry: Sequence[str] = (),
) -> pd.DataFrame:
    """Per subject: baseline (flagged when from outside the window), the value at ``visit`` and the change.

    Columns named in ``carry`` come along: the baseline row's as ``baseline_<column>``, the visit's as ``<column>``.
    """
    from lungtrial.stats import _baseline

    carry = list(carry)
    base = _baseline.baseline_values(
        frame,
        [value_col, *carry],
        plan.baseline_visit,
        lookback_days=plan.baseline_lookback_days,
        first_dose_day=plan.first_dose_day if timed else None,
    ).rename(columns={value_col: "baseline", **{c: f"baseline_{c}" for c in carry}})
    ok = frame.loc[frame["status"] == "ok"] if "status" in frame.columns else frame
    at = ok.loc[ok["visit"].astype(str) == visit, [by, value_col, *carry]].drop_duplicates(by, keep="last")
    d = base.merge(at.rename(columns={value_col: "value"}), on=by, how="inner")
    d["baseline"] = pd.to_numeric(d["baseline"], errors="coerce")
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    d = d.dropna(subset=["baseline", "value"])
    return d.assign(change=d["value"] - d["baseline"])


def _censoring_note(labs: pd.DataFrame, o: Outcome, plan: Plan) -> str:
    """Censored values among the baseline and visit values a lab change compares (before the rule is applied,
    so values the rule ``exclude`` leaves out are counted), and whether the rule can change their ranks."""
    from lungtrial.stats._censoring import censoring_changes_ranks

    sel = labs.loc[(labs["analyte"] == o.analyte) & labs["value"].notna()]
    sel = sel.assign(status="ok", censored=sel["censored"].fillna("").astype(str).str.strip())
    d = _changes(sel, "value", o.at, plan, timed=True, carry=("censored",))
    values = pd.concat([d["baseline"], d["value"]], ignore_index=True)
    flags = pd.concat([d["baseline_censored"], d["censored"]], ignore_index=True)
    n_cens = int(flags.isin(["<", ">"]).sum())
    if not n_cens:
        return ""
    note = f"{n_cens} censored value(s), rule {plan.censoring}"
    if censoring_changes_ranks(values, flags):
        note += " (the rule can change the ranks)"
    return note


def _flag_note(d: pd.DataFrame) -> str:
    flagged = d.loc[d["baseline_flag"].astype(str) != "", "baseline_flag"] if "baseline_flag" in d else []
    if not len(flagged):
        return ""
    return f"{len(flagged)} baseline value(s) from before the baseline window (" + "; ".join(
        f"{s}: {f}" for s, f in zip(d.loc[flagged.index, "subject_id"], flagged)
    ) + ")"


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _change_rows(
    o: Outcome,
    d: pd.DataFrame,
    visit: str,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float,
) -> dict[str, object]:
    """One comparison of the change from baseline at ``visit`` (ANCOVA or Mann-Whitney / Hodges-Lehmann)."""
    from lungtrial.stats import _compare

    log = o.scale == "log"
    if o.analysis == "ancova":
        res = ancova(d, reference, treatment, min_per_arm, confidence, log=log)
        res["note"] = _join(res["note"], _flag_note(d))
        return {"visit": visit, "unit": o.unit, "scale": o.scale, **res}
    ref = d.loc[d["arm"].astype(str) == reference, "change"]
    trt = d.loc[d["arm"].astype(str) == treatment, "change"]
    res = _compare.compare_continuous(ref, trt, reference, treatment, min_per_arm, confidence)
    res["note"] = _join(str(res.get("note", "")), _flag_note(d))
    return {"visit": visit, "unit": o.unit, "scale": o.scale, **res}


def _change_map_pairs(
    change: pd.DataFrame, scans: pd.DataFrame, column: str, visit: str, plan: Plan
) -> tuple[pd.DataFrame, str]:
    """The pairs of the change table that count for a change-map endpoint at ``visit`` and a note on the others.

    A pair counts when its follow-up is the subject's scan of ``visit`` (as the scans table labels it, at most one
    per subject; without a scan_id column, the change table's own visit label, the latest pair per subject), it
    was compared (status ``ok``: registration passed its QC, both scans measured) and its baseline CT is the
    subject's baseline scan (:func:`lungtrial.stats.baseline_values`, with the plan's look-back: a change map
    against a later scan, when the baseline CT was excluded, is no change from baseline). Returns the counted
    pairs as ``subject_id, arm, change`` (the endpoint's value; with ``baseline_flag`` when the scans table names
    scans) and the note naming what was left out.
    """
    from lungtrial.stats import _baseline

    pairs = change.assign(visit=change["visit"].fillna("").astype(str), status=change["status"].astype(str))
    if {"scan_id", "visit"} <= set(scans.columns):
        at_visit = set(scans.loc[scans["visit"].astype(str) == visit, "scan_id"].astype(str))
        pairs = pairs.loc[pairs["followup_scan"].astype(str).isin(at_visit)]
    else:
        pairs = pairs.loc[pairs["visit"] == visit].sort_values(["subject_id", "study_day"])
        pairs = pairs.drop_duplicates("subject_id", keep="last")
    notes = []
    left = pairs.loc[pairs["status"] != "ok"]
    if len(left):
        notes.append(f"{len(left)} pair(s) not compared left out ("
                     + "; ".join(f"{s}: {st}" for s, st in zip(left["subject_id"], left["status"])) + ")")
    pairs = pairs.loc[pairs["status"] == "ok"]
    if "scan_id" in scans.columns:
        base = _baseline.baseline_values(scans, ["scan_id"], plan.baseline_visit,
                                        lookback_days=plan.baseline_lookback_days)
        base = base.rename(columns={"scan_id": "baseline_scan_expected"})[
            ["subject_id", "baseline_scan_expected", "baseline_flag"]]
        pairs = pairs.merge(base, on="subject_id", how="left")
        other = pairs["baseline_scan"].astype(str) != pairs["baseline_scan_expected"].astype(str)
        if other.any():
            notes.append(f"{int(other.sum())} pair(s) against a CT other than the subject's baseline scan left out ("
                         + "; ".join(f"{s}: {b}" for s, b in zip(pairs.loc[other, "subject_id"],
                                                                 pairs.loc[other, "baseline_scan"])) + ")")
        pairs = pairs.loc[~other]
    values = pd.to_numeric(pairs[column], errors="coerce")
    missing = int(values.isna().sum())
    if missing:
        notes.append(f"{missing} pair(s) without a value left out")
    pairs = pairs.assign(value=values).loc[values.notna()]
    keep = [c for c in ("subject_id", "arm", "value", "baseline_flag") if c in pairs.columns]
    return pairs[keep].rename(columns={"value": "change"}), _join(*notes)


def imaging_outcomes(
    plan: Plan,
    scans: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    change: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Change from baseline of each imaging outcome at each of its visits, compared by arm (ANCOVA or ranks).

    Only measured scans (``status == "ok"``) count; the baseline scan is the last one before the first dose
    (:func:`lungtrial.stats.baseline_values`). A change-map endpoint (``source: change``) takes its values from
    ``change`` (the change table, :func:`lungtrial.imaging.change.change_table`), the pairs chosen as
    :func:`_change_map_pairs` says, and compares them by Mann-Whitney U and the Hodges-Lehmann shift. One row per
    outcome and visit: ``source`` (``scans`` or ``change``) and the columns of :func:`ancova` or
    :func:`lungtrial.stats.compare_continuous`.
    """
    rows = []
    for o in plan.of_type("imaging"):
        if o.source == "change":
            if change is None:
                raise InputError(f"config {o.key} ({o.name}): a change-map endpoint needs the change table "
                                 "(results/imaging/change.csv; registration.enabled: true)")
            for visit in o.visits:
                d, note = _change_map_pairs(change, scans, o.column, visit, plan)
                row = _change_rows(o, d, visit, reference, treatment, min_per_arm, confidence)
                row["note"] = _join(str(row.get("note", "")), note)
                rows.append({**_role_columns(o), "source": "change", "analysis": o.analysis, **row})
            continue
        if o.column not in scans.columns:
            raise InputError(f"scans table: column {o.column!r} named by config {o.key} ({o.name}) is missing")
        for visit in o.visits:
            d = _changes(scans, o.column, visit, plan)
            rows.append({**_role_columns(o), "source": "scans", "analysis": o.analysis,
                         **_change_rows(o, d, visit, reference, treatment, min_per_arm, confidence)})
    return pd.DataFrame(rows)


def _lab_frame(labs: pd.DataFrame, analyte: str, censoring: str) -> pd.DataFrame:
    """One analyte's values, censored ones replaced by the plan's rule (:func:`lungtrial.stats.censor_values`)."""
    from lungtrial.stats._censoring import censor_values

    sel = labs.loc[(labs["analyte"] == analyte) & labs["value"].notna()]
    return sel.assign(status="ok", value=censor_values(sel["value"], sel["censored"], censoring))


def continuous_outcomes(
    plan: Plan,
    subjects: pd.DataFrame,
    labs: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Continuous and count outcomes: ranks (:func:`lungtrial.stats.continuous_outcomes`) or lab ANCOVA rows."""
    from lungtrial.stats import _compare

    rank = [o for o in plan.of_type("continuous", "count") if o.analysis == "mann-whitney"]
    out = _compare.continuous_outcomes(
        subjects, labs, rank, reference, treatment, min_per_arm, confidence, censoring=plan.censoring
    )
    rows = []
    for o in plan.of_type("continuous"):
        if o.analysis != "ancova":
            continue
        d = _changes(_lab_frame(labs, o.analyte, plan.censoring), "value", o.at, plan, timed=True)
        row = _change_rows(o, d, o.at, reference, treatment, min_per_arm, confidence)
        row["note"] = _join(str(row.get("note", "") or ""), _censoring_note(labs, o, plan))
        rows.append({**_role_columns(o), "analysis": "ancova", **row})
    if rows:
        out = pd.concat([out, pd.DataFrame(rows)], ignore_index=True)
    return out


def survival_outcomes(
    plan: Plan,
    subjects: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Time-to-event outcomes: Kaplan-Meier median per arm, log-rank test, Cox hazard ratio; all subjects count.

    Subjects without the event are censored at their duration (for the clinical stage's derived outcomes, the
    last contact); no comparison is restricted to subjects with the event. Columns: role, family, outcome, label,
    unit, reference_arm, treatment_arm and those of :func:`lungtrial.stats.compare_survival` (its ``hr_note``
    joined to ``note``).
    """
    from lungtrial.stats import _compare, _survival_tables

    rows = []
    for o in plan.of_type("time-to-event"):
        row = _survival_tables.compare_survival(
            subjects[o.column], _compare.as_bool(subjects[o.event]).fillna(False), subjects["arm"], reference,
            treatment, min_per_arm, confidence,
        )
        note = _join(str(row.pop("note")), str(row.pop("hr_note")))
        rows.append({**_role_columns(o), "unit": o.unit or "days", "reference_arm": reference,
                     "treatment_arm": treatment, **row, "note": note})
    return pd.DataFrame(rows)


COMPETING_COLUMNS = [
    "outcome", "label", "arm", "time", "n_at_risk", "n_event", "n_death", "n_censored", "incidence", "ci_low",
    "ci_high", "death_incidence", "confidence", "gray_statistic", "gray_p_value", "note",
]
"""Columns of :func:`competing_risk_outcomes`."""


def competing_risk_outcomes(
    plan: Plan,
    subjects: pd.DataFrame,
    reference: str,
    treatment: str,
    confidence: float = 0.95,
    min_per_arm: int = 1,
) -> pd.DataFrame:
    """Cumulative incidence of each time-to-event outcome with death as a competing event, per arm (Aalen-Johansen),
    and Gray's test of equal incidence in the two arms.

    A subject who dies before the event can no longer have it: Kaplan-Meier, which treats the death as censoring,
    estimates the incidence in a world without deaths and overstates it. The Aalen-Johansen estimator
    (:func:`lungtrial.stats.cumulative_incidence`) gives the probability of having had the event by each day
    with death competing. Each subject's first event counts: the outcome's event at its duration when it came on
    or before the day of death (``plan.death_column``), else death at the day of death, else censoring at the
    duration. Gray's test (:func:`lungtrial.stats.gray_test`, as ``cmprsk::cuminc``) compares the arms' cumulative
    incidence of the event with death competing: a supportive analysis of the outcome's log-rank test, not in its
    multiplicity family (unadjusted).

    Parameters
    ----------
    plan : Plan
        Its time-to-event outcomes and ``death_column``.
    subjects : DataFrame
        The subjects table: ``subject_id, arm``, the outcomes' duration and event columns and the death column
        (study day of death, days; empty: alive at the last contact).
    reference, treatment : str
        The arms, reported in this order.
    confidence : float
        Level of the pointwise interval of the incidence (lifelines: log-log transform).
    min_per_arm : int
        No test when an arm has fewer subjects with a duration.

    Returns
    -------
    DataFrame
        :data:`COMPETING_COLUMNS`: one row per outcome, arm and time (day 0 and every day on which an event, a
        death or a censoring happens): numbers at risk (duration >= time) and with each outcome on that day,
        ``incidence`` of the event with ``ci_low``, ``ci_high`` and ``death_incidence`` (proportions 0-1),
        ``gray_statistic`` (chi-square, 1 df) and ``gray_p_value`` (the same on every row of the outcome; NaN
        without events or with too few subjects, ``note`` says why), and a ``note`` (e.g. no deaths in the arm: the
        incidence then equals 1 - Kaplan-Meier). Empty when the plan names no death column.

    Raises
    ------
    InputError
        A subject whose event is recorded after the day of death (names the subject and the columns).
    """
    from lungtrial.stats import _compare
    from lungtrial.stats._survival import cumulative_incidence, gray_test

    if not plan.death_column:
        return pd.DataFrame(columns=COMPETING_COLUMNS)
    death = pd.to_numeric(subjects[plan.death_column], errors="coerce").astype(float)
    rows = []
    for o in plan.of_type("time-to-event"):
        d = pd.DataFrame(
            {
                "subject_id": subjects["subject_id"].astype(str),
                "arm": subjects["arm"].astype(str),
                "duration": pd.to_numeric(subjects[o.column], errors="coerce").astype(float),
                "event": _compare.as_bool(subjects[o.event]).fillna(False).astype(bool),
                "death": death,
            }
        )
        d = d.loc[d["arm"].isin([reference, treatment])]
        late = d.loc[d["event"] & (d["death"] < d["duration"]), "subject_id"].tolist()
        if late:
            raise InputError(
                f"subjects table: subject(s) {', '.join(late)}: {o.event} is true at {o.column} after the day of "
                f"death ({plan.death_column}); expected the event on or before the day of death (config {o.key})"
            )
        died_first = d["death"].notna() & ~(d["event"] & (d["duration"] <= d["death"]))
        d = d.assign(
            time=d["duration"].where(~died_first, d["death"]),
            code=np.where(died_first, 2, np.where(d["event"], 1, 0)),
        )
        missing = int(d["time"].isna().sum())
        d = d.dropna(subset=["time"])
        too_few = _compare._too_few(int((d["arm"] == reference).sum()), int((d["arm"] == treatment).sum()), reference,
                                    treatment, min_per_arm)
        gray = {"statistic": math.nan, "p_value": math.nan}
        if not too_few:
            gray = gray_test(d["time"], d["code"], d["arm"], event_of_interest=1)
        test = {"gray_statistic": gray["statistic"], "gray_p_value": gray["p_value"]}
        for arm in (reference, treatment):
            a = d.loc[d["arm"] == arm]
            notes = [f"{missing} subject(s) without a duration left out"] if missing else []
            notes += [too_few.replace("not tested", "Gray's test not done")] if too_few else []
            if a.empty:
                rows.append({"outcome": o.name, "label": o.label, "arm": arm, "confidence": confidence, **test,
                             "note": _join(*notes, "no subjects with a duration")})
                continue
            deaths = int((a["code"] == 2).sum())
            if not deaths:
                notes.append("no deaths in this arm: the incidence equals 1 - Kaplan-Meier")
            cif = cumulative_incidence(a["time"], a["code"], 1, confidence)
            death_cif = (
                cumulative_incidence(a["time"], a["code"], 2, confidence).set_index("time")["incidence"]
                if deaths
                else pd.Series(0.0, index=cif["time"])
            )
            for _, r in cif.iterrows():
                when = float(r["time"])
                on_day = a["time"] == when
                rows.append(
                    {
                        "outcome": o.name,
                        "label": o.label,
                        "arm": arm,
                        "time": when,
                        "n_at_risk": int((a["time"] >= when).sum()),
                        "n_event": int((on_day & (a["code"] == 1)).sum()),
                        "n_death": int((on_day & (a["code"] == 2)).sum()),
                        "n_censored": int((on_day & (a["code"] == 0)).sum()),
                        "incidence": float(r["incidence"]),
                        "ci_low": float(r["ci_low"]),
                        "ci_high": float(r["ci_high"]),
                        "death_incidence": float(death_cif.loc[when]),
                        "confidence": confidence,
                        **test,
                        "note": _join(*notes),
                    }
                )
    return pd.DataFrame(rows, columns=COMPETING_COLUMNS)


_SUMMARY_COLUMNS = [
    "role", "family", "outcome", "label", "type", "visit", "unit", "scale", "test", "effect",
    "n_reference", "n_treatment", "summary_reference", "summary_treatment",
    "estimate", "ci_low", "ci_high", "p_value", "p_adjusted", "adjustment", "note",
]


def _summary(o: Outcome, row: Mapping[str, object]) -> dict[str, object]:
    """The ``outcomes`` table row of one detailed result row."""
    if o.type == "binary":
        est = {"effect": "odds ratio, conditional ML (treatment vs reference)",
               "estimate": row.get("odds_ratio", math.nan), "ci_low": row.get("or_ci_low", math.nan),
               "ci_high": row.get("or_ci_high", math.nan)}
    elif o.type == "time-to-event":
        est = {"effect": "hazard ratio (Cox, treatment vs reference)", "estimate": row.get("hazard_ratio", math.nan),
               "ci_low": row.get("hr_ci_low", math.nan), "ci_high": row.get("hr_ci_high", math.nan)}
        summaries = {k: f"{row[f'events_{k}']}/{row[f'n_{k}']} events, median {stats_fmt(row[f'median_{k}'])} days"
                     for k in ("reference", "treatment")}
        est |= {f"summary_{k}": v for k, v in summaries.items()}
    elif "hl_difference" in row and not (isinstance(row.get("effect"), str) and row.get("effect")):
        ratio = o.scale == "log"
        est = {"effect": "Hodges-Lehmann " + ("ratio (treatment / reference)" if ratio else
                                              "shift (treatment - reference)"),
               "estimate": row.get("hl_difference"), "ci_low": row.get("hl_ci_low"), "ci_high": row.get("hl_ci_high")}
    else:
        est = {"effect": row.get("effect", ""), "estimate": row.get("estimate"), "ci_low": row.get("ci_low"),
               "ci_high": row.get("ci_high")}
        if "mean_change_reference" in row:
            what = "geometric mean of value / baseline" if o.scale == "log" else "mean change"
            est |= {f"summary_{k}": f"{what} {stats_fmt(row[f'mean_change_{k}'])} (n={row[f'n_{k}']})"
                    for k in ("reference", "treatment")}
    out = {"type": o.type, "visit": row.get("visit", ""), "unit": o.unit, "scale": o.scale, **row, **est}
    out.update(_role_columns(o))
    return {c: out.get(c, "") for c in _SUMMARY_COLUMNS if c not in ("p_adjusted", "adjustment")}


def stats_fmt(x: object) -> str:
    """A number for a summary cell (three significant figures), ``NA`` when missing."""
    from lungtrial.stats import _compare

    try:
        return _compare.fmt_num(float(x))
    except (TypeError, ValueError):
        return "NA"


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty or "role" not in table.columns:
        return table
    order = table["role"].map({r: i for i, r in enumerate(ROLES)})
    return table.assign(_o=order).sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True)


def run_plan(
    plan: Plan,
    subjects: pd.DataFrame,
    labs: pd.DataFrame,
    scans: pd.DataFrame,
    adverse_events: pd.DataFrame | None,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    change: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Every comparison of the plan, with multiplicity adjusted within families.

    Parameters
    ----------
    plan : Plan
        From :func:`load_plan`.
    subjects, labs, scans : DataFrame
        The clinical stage's tables (``results/tables``).
    adverse_events : DataFrame or None
        None when the trial gave no adverse-events sheet (outcomes from it are then reported as not available).
    reference, treatment : str
        Arms compared (treatment - reference, treatment / reference for ratios).
    min_per_arm : int
        No test where an arm has fewer subjects with data.
    confidence : float
        Level of every confidence interval.
    change : DataFrame, optional
        The change maps' table (``results/imaging/change.csv``), needed when the plan has change-map endpoints
        (:meth:`Plan.change_endpoints`).

    Returns
    -------
    dict of DataFrame
        ``primary``, ``outcomes``, ``binary``, ``continuous``, ``imaging_change``, ``survival`` (see the module
        docstring). Every table has ``role``, ``family``, ``p_value``, ``p_adjusted`` and ``adjustment``. When the
        plan names a death column also ``competing_risk`` (:func:`competing_risk_outcomes`; Gray's test, unadjusted).
    """
    from lungtrial.stats import _compare

    check_columns(plan, subjects, scans, change=change)
    detailed = {
        "binary": _compare.binary_outcomes(
            subjects, adverse_events, plan.of_type("binary"), reference, treatment, min_per_arm, confidence
        ),
        "continuous": continuous_outcomes(plan, subjects, labs, reference, treatment, min_per_arm, confidence),
        "imaging_change": imaging_outcomes(plan, scans, reference, treatment, min_per_arm, confidence, change),
        "survival": survival_outcomes(plan, subjects, reference, treatment, min_per_arm, confidence),
    }
    by_name = {o.name: o for o in plan.outcomes}
    summary_rows = []
    for name, table in detailed.items():
        for i, row in table.iterrows():
            summary_rows.append({**_summary(by_name[row["outcome"]], row.to_dict()), "_table": name, "_row": i})
    summary = pd.DataFrame(summary_rows, columns=[*_SUMMARY_COLUMNS, "_table", "_row"])
    summary = adjust_families(summary.drop(columns=["p_adjusted", "adjustment"]), plan)
    plan_order = {o.name: i for i, o in enumerate(plan.outcomes)}
    summary = summary.assign(_p=summary["outcome"].map(plan_order))
    summary = _ordered(summary.sort_values("_p", kind="stable")).drop(columns="_p")
    results: dict[str, pd.DataFrame] = {}
    for name, table in detailed.items():
        part = summary.loc[summary["_table"] == name].set_index("_row")
        if table.empty:
            table = pd.DataFrame(columns=["role", "family", "outcome", "label", "p_value", "p_adjusted", "adjustment",
                                          "note"])
        else:
            table = table.assign(
                role=part["role"], family=part["family"], p_adjusted=part["p_adjusted"], adjustment=part["adjustment"]
            )
            first = ["role", "family", "outcome", "label"]
            table = table[first + [c for c in table.columns if c not in first]]
        results[name] = _ordered(table)
    results["outcomes"] = summary[_SUMMARY_COLUMNS].reset_index(drop=True)
    results["primary"] = summary.loc[summary["role"] == "primary", _SUMMARY_COLUMNS].reset_index(drop=True)
    primary = plan.primary
    if primary is not None and len(results["primary"]):
        detail = detailed[summary.loc[summary["role"] == "primary", "_table"].iloc[0]]
        extra = detail.loc[detail["outcome"] == primary.name].drop(
            columns=[c for c in detail.columns if c in _SUMMARY_COLUMNS], errors="ignore"
        ).dropna(axis=1, how="all")
        results["primary"] = pd.concat([results["primary"], extra.reset_index(drop=True)], axis=1)
    if plan.death_column:
        results["competing_risk"] = competing_risk_outcomes(plan, subjects, reference, treatment, confidence,
                                                            min_per_arm)
    return results
