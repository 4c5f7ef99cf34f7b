"""Mixed-model tables: the linear mixed model of every imaging metric and lab analyte over visits or time
(:func:`lungtrial.stats.mixed_model`), one table for all outcomes, and its sensitivity to the censoring rule.

The models are exploratory and unadjusted; they agree with lmerTest, mmrm or nlme (:mod:`lungtrial.stats._mixed`).
Censored lab values become numbers by one rule (:mod:`lungtrial.stats._censoring`); the number censored is
reported, and whether the rule can change their ranks.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from lungtrial.stats._baseline import IMAGING_ENDPOINTS, metric_unit
from lungtrial.stats._censoring import CENSOR_RULES, DEFAULT_CENSOR_RULE, censor_values, censoring_changes_ranks
from lungtrial.stats._mixed import COLUMNS as _MIXED_MODEL_COLUMNS
from lungtrial.stats._mixed import mixed_model


def censored_for_model(values: pd.Series, censored: pd.Series, rule: str = DEFAULT_CENSOR_RULE) -> pd.Series:
    """Lab values for modelling by one censoring rule (:func:`lungtrial.stats.censor_values`; default
    :data:`lungtrial.stats.DEFAULT_CENSOR_RULE`: ``limit / 2`` below a limit, the limit above one)."""
    return censor_values(values, censored, rule)


def is_skewed(values: Sequence[float], threshold: float = 1.0) -> bool:
    """True when all values are positive and their sample skewness exceeds ``threshold`` (log scale is used)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size >= 3 and np.all(v > 0) and sps.skew(v) > threshold)



MIXED_COLUMNS = [_MIXED_MODEL_COLUMNS[0], "label", "unit", *_MIXED_MODEL_COLUMNS[1:]]
"""Leading columns of :func:`mixed_models`' table."""


def mixed_models(
    scans: pd.DataFrame,
    labs: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    *,
    time: str = "continuous",
    random_slope: bool = False,
    df_method: str = "satterthwaite",
    censor_rule: str = DEFAULT_CENSOR_RULE,
    scales: dict[str, str] | None = None,
    visits: Sequence[str] | None = None,
    imaging: Mapping[str, str] | None = None,
    covariance: str | Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Mixed models (:func:`lungtrial.stats.mixed_model`) of each imaging metric in ``imaging`` and each lab.

    Parameters
    ----------
    scans, labs : pandas.DataFrame
        The clinical stage's scans table (measured scans, status "ok", are used) and labs table (long form with
        ``value``, ``censored``, ``analyte``, ``analyte_label``, ``unit``, ``study_day``, ``visit``).
    reference, treatment, min_per_arm, confidence
        As for :func:`lungtrial.stats.mixed_model`.
    time, random_slope, df_method, visits
        The model (:func:`lungtrial.stats.mixed_model`): ``time="visit"`` (visit factor, arm by visit) or
        ``"continuous"`` (study day), random slope or not, ``"satterthwaite"`` or ``"between-within"`` df.
    censor_rule : str
        How censored lab values enter (:data:`lungtrial.stats.CENSOR_RULES`); ``note`` counts them and says
        when the rule can change their ranks (:func:`lungtrial.stats.censoring_changes_ranks`).
    scales : dict, optional
        Prespecified scale per outcome (metric or analyte name): ``"log"`` or ``"linear"``. An outcome not in it:
        imaging metrics linear; labs on the log scale when all values are positive and skewed (:func:`is_skewed`),
        which ``note`` then calls chosen from the data.
    imaging : mapping, optional
        Scans-table metric -> label of the imaging outcomes modelled (default :data:`IMAGING_ENDPOINTS`; the
        workflow passes the analysis plan's imaging metrics). Percentages (``pct_*``) are in % of lung volume,
        ``*_ml`` volumes in mL.
    covariance : str or mapping, optional
        The model's covariance (:data:`lungtrial.stats.COVARIANCES`), for every outcome or per outcome (metric or
        analyte name; the key ``default`` for the others, :meth:`lungtrial.stats.Plan.model_covariance`). None:
        from ``random_slope``.

    Returns
    -------
    pandas.DataFrame
        The rows of :func:`lungtrial.stats.mixed_model` for all outcomes, columns :data:`MIXED_COLUMNS` first,
        then ``censor_rule`` and ``n_censored`` (labs) and the variance components.
    """
    scales = dict(scales or {})
    kw = {"time": time, "random_slope": random_slope, "df_method": df_method, "visits": visits}

    def cov(name: str) -> str | None:
        if covariance is None or isinstance(covariance, str):
            return covariance
        return covariance.get(name, covariance.get("default"))
    out = []
    ok = scans.loc[scans["status"] == "ok"] if "status" in scans.columns else scans
    for metric, label in (IMAGING_ENDPOINTS if imaging is None else imaging).items():
        if metric not in ok.columns:
            continue
        cols = ["subject_id", "arm", "study_day"] + (["visit"] if "visit" in ok.columns else [])
        d = ok[cols].assign(y=pd.to_numeric(ok[metric], errors="coerce"))
        log = scales.get(metric, "linear") == "log"
        res = mixed_model(d, metric, reference, treatment, min_per_arm, log, confidence, covariance=cov(metric), **kw)
        out.append(res.assign(label=label, unit=metric_unit(metric), censor_rule="", n_censored=0))
    for analyte, sel in labs.groupby("analyte", sort=True):
        y = censor_values(sel["value"], sel["censored"], censor_rule)
        cols = ["subject_id", "arm", "study_day"] + (["visit"] if "visit" in sel.columns else [])
        d = sel[cols].assign(y=y)
        chosen = ""
        if str(analyte) in scales:
            log = scales[str(analyte)] == "log"
        else:
            log = is_skewed(d["y"])
            chosen = "log scale chosen from the data (skewness > 1)" if log else ""
        res = mixed_model(
            d, str(analyte), reference, treatment, min_per_arm, log, confidence, covariance=cov(str(analyte)), **kw
        )
        n_cens = int(sel["censored"].fillna("").astype(str).str.strip().isin(["<", ">"]).sum())
        extra = [chosen] if chosen else []
        if n_cens:
            extra.append(f"{n_cens} censored value(s), rule {censor_rule}")
            if censoring_changes_ranks(sel["value"], sel["censored"]):
                extra.append("the censoring rule can change the ranks of the values")
        if extra:
            res["note"] = ["; ".join(x for x in (str(n), *extra) if x) for n in res["note"]]
        out.append(
            res.assign(
                label=str(sel["analyte_label"].iloc[0]),
                unit=str(sel["unit"].iloc[0]),
                censor_rule=censor_rule if n_cens else "",
                n_censored=n_cens,
            )
        )
    if not out:
        return pd.DataFrame(columns=MIXED_COLUMNS)
    df = pd.concat(out, ignore_index=True)
    return df[MIXED_COLUMNS + [c for c in df.columns if c not in MIXED_COLUMNS]]


def mixed_models_censoring_sensitivity(
    labs: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    rules: Sequence[str] = tuple(CENSOR_RULES),
    configured_rule: str = DEFAULT_CENSOR_RULE,
    **model: object,
) -> pd.DataFrame:
    """Sensitivity of the lab mixed models to the censoring rule: :func:`mixed_models` of every analyte with
    censored values rerun under each rule in ``rules`` (``model`` passes ``time``, ``random_slope``,
    ``df_method``, ``scales``, ``visits``, ``covariance``).

    An analyte without a scale in ``scales`` gets the one the data give under ``configured_rule`` (the analysis
    plan's; :func:`is_skewed`) for every rule, so that the rules are compared on one scale.

    Returns
    -------
    pandas.DataFrame
        ``censor_rule`` and the rows of :func:`mixed_models` for every rule; empty when nothing is censored.
    """
    flagged = labs["censored"].fillna("").astype(str).str.strip().isin(["<", ">"])
    analytes = sorted(labs.loc[flagged, "analyte"].astype(str).unique())
    if not analytes:
        return pd.DataFrame(columns=["censor_rule", *MIXED_COLUMNS])
    sel = labs.loc[labs["analyte"].astype(str).isin(analytes)]
    scales = dict(model.pop("scales", None) or {})
    for analyte, d in sel.groupby("analyte", sort=True):
        if str(analyte) not in scales:
            log = is_skewed(censor_values(d["value"], d["censored"], configured_rule))
            scales[str(analyte)] = "log" if log else "linear"
    empty_scans = pd.DataFrame(columns=["subject_id", "arm", "study_day", "status"])
    parts = []
    for rule in rules:
        res = mixed_models(
            empty_scans, sel, reference, treatment, min_per_arm, confidence, censor_rule=rule, scales=scales, **model
        )
        parts.append(res.assign(censor_rule=rule))
    out = pd.concat(parts, ignore_index=True)
    return out[["censor_rule", *[c for c in out.columns if c != "censor_rule"]]]


def mixed_models_table(
    scans: pd.DataFrame,
    labs: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    *,
    covariance: str | Mapping[str, str] | None = None,
    random_slope: bool = False,
    **model: object,
) -> pd.DataFrame:
    """The mixed models of every outcome over visits and over time in one table (the workflow's
    ``mixed_models.csv``): :func:`mixed_models` with visit as a factor (arm by visit, with ``covariance``), then with
    study day as a line (a random intercept, and a random slope when ``random_slope``).

    ``model`` passes ``df_method``, ``censor_rule``, ``scales``, ``visits`` and ``imaging`` to both.
    """
    return _visit_and_day(
        mixed_models,
        (scans, labs, reference, treatment, min_per_arm, confidence),
        covariance,
        random_slope,
        model,
    )


def censoring_sensitivity_table(
    labs: pd.DataFrame,
    reference: str,
    treatment: str,
    min_per_arm: int,
    confidence: float = 0.95,
    *,
    covariance: str | Mapping[str, str] | None = None,
    random_slope: bool = False,
    **model: object,
) -> pd.DataFrame:
    """:func:`mixed_models_censoring_sensitivity` of the models of :func:`mixed_models_table` (visit as a factor,
    then study day as a line) in one table (the workflow's ``censoring_sensitivity.csv``).

    ``model`` passes ``df_method``, ``scales``, ``visits``, ``configured_rule`` and ``rules`` to both.
    """
    return _visit_and_day(
        mixed_models_censoring_sensitivity,
        (labs, reference, treatment, min_per_arm, confidence),
        covariance,
        random_slope,
        model,
    )


def _visit_and_day(models, args: tuple, covariance, random_slope: bool, model: dict) -> pd.DataFrame:
    return pd.concat(
        [
            models(*args, time="visit", covariance=covariance, **model),
            models(*args, time="continuous", random_slope=random_slope, **model),
        ],
        ignore_index=True,
    )
