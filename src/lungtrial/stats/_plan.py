"""The trial's analysis plan (config ``analysis:``): outcomes, visits, baseline, censoring, multiplicity.

The plan is declared per trial in ``config/config.yaml`` (documented in ``config/README.md``); nothing about a
trial's outcomes lives in the library. :func:`load_plan` reads and checks it (every error names the config key);
:func:`check_columns` checks that the clinical stage's tables hold the columns it names;
:func:`lungtrial.stats.run_plan` runs it (:mod:`lungtrial.stats._run`).

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

ANCOVA: :func:`lungtrial.stats.ancova`; multiplicity: :func:`lungtrial.stats.adjust_families`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
