"""Linear mixed models of a repeated measure by arm, with small-sample t inference as lmerTest, mmrm and nlme give it.

Two models of an outcome ``y`` measured over study days in two arms (``treated`` = 1 in the treatment arm):

- ``time="visit"``: nominal visit as a factor with an arm-by-visit interaction,
  ``y ~ visit * treated`` (the first visit, baseline, is the reference level), so the course over time may take
  any shape; the arm difference at each visit is a linear combination of the coefficients.
- ``time="continuous"``: study day as a straight line per arm, ``y ~ study_day * treated``; the arm difference
  at a visit is evaluated at the visit's median study day.

How the observations of one subject are correlated (``covariance``, :data:`COVARIANCES`):

- random effects per subject: ``random-intercept``, or ``random-slope``, an intercept and a slope on study day
  (days) with an unstructured 2 x 2 covariance (lme4's ``(1 + study_day | subject_id)``). Estimation is REML:
  statsmodels ``MixedLM`` finds the optimum, which is then refined by Newton steps on the exact REML criterion so
  that the estimates agree with lme4 to several digits.
- a residual covariance across the visits within a subject, without random effects (``time="visit"`` only; the
  MMRM of clinical trials): ``unstructured`` (a variance per visit and a correlation per pair of visits,
  ``nlme::gls(correlation = corSymm(form = ~ k | subject), weights = varIdent(form = ~ 1 | visit))``, mmrm's
  ``us``), ``compound-symmetry`` (``corCompSymm``, mmrm's ``cs``) or ``ar1`` (``corAR1(form = ~ k | subject)`` with
  k the visit's number, mmrm's ``ar1``). A subject missing a visit contributes the rows of the visits it has (the
  likelihood of the observed data: missing at random). No well-kept Python library fits these models (statsmodels
  has GLS only with a known covariance, ``MixedLM`` only random effects; no maintained package we found has nlme's
  ``corSymm``), so the REML criterion, its exact gradient and Hessian are written in this package
  (:func:`lungtrial.stats._mixed_reml._reml_core`) and minimised by scipy's trust-region Newton method
  (``trust-exact``).

Inference on each coefficient and each arm difference is t based:

- ``df_method="satterthwaite"`` (default): Satterthwaite's degrees of freedom, 2 (L'CL)^2 / (g' A g), with the
  asymptotic covariance A of the covariance parameters from the Hessian of the REML deviance and g the gradient
  of L'CL in them, here with exact derivatives: as ``lmerTest`` computes them for random effects (in lme4's
  parametrisation: relative Cholesky factor and residual standard deviation), and as the R package mmrm and SAS
  PROC MIXED (``DDFM=SATTERTHWAITE``) for a residual covariance (the df do not depend on the parametrisation).
- ``df_method="between-within"`` (random effects): ``nlme::lme``'s rule: a term that varies within subjects gets
  ``N - n_subjects - (number of such terms)`` df, one that is constant within subjects gets
  ``n_subjects - (number of such terms) - 1``; a combination of coefficients (an arm difference at a visit)
  gets the smallest df of the coefficients it uses (emmeans' "containment" rule for ``lme``).
- ``df_method="residual"`` (residual covariance): ``N - p``, as ``summary(nlme::gls)``.

The intercept gets no p value (it is no comparison), nor does the arm difference at baseline (day 0 or the
first visit): the arms are randomised, so a test of their difference there tests nothing; its estimate and CI
are kept.

This module fits the model and lays out its table; the parts live beside it: ``_mixed_choices`` (the choices of
time, covariance and df, the table's columns), ``_mixed_reml`` (the REML criterion and Satterthwaite's df that both
kinds of covariance share), ``_mixed_random`` (random effects: refinement of MixedLM's optimum, the bounded fit,
between-within df) and ``_mixed_gls`` (the residual covariance structures and their fit).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from lungtrial.stats._compare import _too_few
from lungtrial.stats._mixed_choices import (
    _CONTINUOUS_TERMS,
    COLUMNS,
    COVARIANCES,
    DF_METHODS,
    RANDOM_EFFECTS,
    RESIDUAL_COVARIANCES,
    TIMES,
)
from lungtrial.stats._mixed_gls import _describe_sigma, _fit_gls, _Patterns
from lungtrial.stats._mixed_random import _between_within, _Blocks, _fit_bounded, _refine, _reml, _satterthwaite
from lungtrial.stats._mixed_reml import _satterthwaite_df

logger = logging.getLogger(__name__)

OPTIMIZERS: tuple[str, ...] = ("bfgs", "lbfgs", "powell", "nm", "bounded")
"""Optimisers tried in turn: statsmodels MixedLM's until one converges with a positive-definite Hessian, then
``"bounded"``: L-BFGS-B on the REML criterion in lme4's parametrisation with the relative Cholesky factor's
diagonal bounded at zero, which, as lme4, also reaches an optimum on the boundary (a singular fit: a random
effect's variance zero, or random intercept and slope perfectly correlated) where MixedLM's optimisers fail.
A model with a random slope tries ``"bounded"`` first: MixedLM's optimisers are much slower there and fail on
some outcomes where the bounded fit converges."""


def visit_order(data: pd.DataFrame, visits: Sequence[str] | None = None) -> list[str]:
    """Visits present in ``data`` (column ``visit``), in the order of ``visits`` or else by median study day."""
    present = data["visit"].fillna("").astype(str)
    present = present[present != ""]
    if visits is not None:
        return [str(v) for v in visits if str(v) in set(present)]
    med = data.assign(visit=present).dropna(subset=["visit"]).groupby("visit")["study_day"].median()
    return [str(v) for v in med.sort_values(kind="stable").index]


def mixed_model(
    data: pd.DataFrame,
    outcome: str,
    reference: str,
    treatment: str,
    min_per_arm: int,
    log: bool = False,
    confidence: float = 0.95,
    *,
    time: str = "continuous",
    random_slope: bool = False,
    df_method: str = "satterthwaite",
    visits: Sequence[str] | None = None,
    covariance: str | None = None,
) -> pd.DataFrame:
    """Linear mixed model of ``y`` by arm over time (REML) with t-based CIs and p values.

    Parameters
    ----------
    data : pandas.DataFrame
        Columns subject_id, arm, study_day (days from day 0), y (the outcome, in its unit) and, for
        ``time="visit"`` and for the arm difference at each visit, visit (nominal visit; rows without one are
        left out of a visit model). Only the two named arms are used.
    outcome : str
        Name written in the ``outcome`` column.
    reference, treatment : str
        The arms; every difference is treatment - reference.
    min_per_arm : int
        No model when an arm has fewer subjects with data (one row says why).
    log : bool
        Model the natural log of ``y`` (non-positive values are left out); estimates are then on the log scale
        (exp(difference) is a ratio).
    confidence : float
        Level of the t-based intervals.
    time : {"continuous", "visit"}
        Study day as a straight line per arm, or the nominal visit as a factor (module docstring).
    random_slope : bool
        Random intercept and slope on study day (unstructured covariance) instead of a random intercept only;
        the same as ``covariance="random-slope"``.
    df_method : {"satterthwaite", "between-within", "residual"}
        Degrees of freedom (:data:`DF_METHODS`): ``between-within`` for the random-effects models only,
        ``residual`` (N - p, as ``nlme::gls``) for the residual covariance structures only.
    visits : sequence of str, optional
        Order of the visits, the first being baseline (default: by median study day).
    covariance : str, optional
        One of :data:`COVARIANCES`: ``random-intercept`` or ``random-slope`` (random effects per subject), or a
        residual covariance across visits, ``unstructured``, ``compound-symmetry`` or ``ar1`` (GLS; only with
        ``time="visit"``). Default: from ``random_slope``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, then reference_arm, treatment_arm and the variance components
        (``random_intercept_var``, ``random_slope_var``, ``random_cov``, ``residual_var``; slope in unit^2 per
        day^2; for a residual covariance structure ``residual_var`` is the variance at the first visit and
        ``covariance_estimates`` gives the estimated variances and correlations in words). Rows of ``kind``
        "coefficient" (one per fixed effect) and "difference" (treatment - reference at each visit, at the visit's
        median study day for a continuous-time model). ``se`` and the CI are in the outcome's unit (log scale with
        ``log``); ``reml_loglik`` is the REML log-likelihood (with its constant, as R's ``logLik``), comparable
        between covariance structures of one outcome and time model. When the model cannot be fitted (too few
        subjects, no optimiser converged, singular design) a single row with ``converged`` false and the reason
        in ``note``.
    """
    if time not in TIMES:
        raise ValueError(f"time={time!r}: expected one of {', '.join(TIMES)}")
    if df_method not in DF_METHODS:
        raise ValueError(f"df_method={df_method!r}: expected one of {', '.join(DF_METHODS)}")
    covariance = covariance or ("random-slope" if random_slope else "random-intercept")
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance={covariance!r}: expected one of {', '.join(COVARIANCES)}")
    gls = covariance in RESIDUAL_COVARIANCES
    if gls and time != "visit":
        raise ValueError(f"covariance={covariance!r} is a covariance across visits: it needs time='visit'")
    if df_method == ("between-within" if gls else "residual"):
        raise ValueError(f"df_method={df_method!r} does not apply to covariance={covariance!r}")
    random_slope = covariance == "random-slope"
    from statsmodels.regression.mixed_linear_model import MixedLM
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    cols = ["subject_id", "arm", "study_day", "y"] + (["visit"] if "visit" in data.columns else [])
    d = data.loc[data["arm"].astype(str).isin([reference, treatment]), cols].copy()
    d["y"] = pd.to_numeric(d["y"], errors="coerce").astype(float)
    d["study_day"] = pd.to_numeric(d["study_day"], errors="coerce").astype(float)
    d = d.dropna(subset=["y", "study_day"])
    if "visit" in d.columns:
        d["visit"] = d["visit"].fillna("").astype(str)
    if time == "visit":
        if "visit" not in d.columns:
            raise ValueError("time='visit' needs a visit column")
        d = d.loc[d["visit"] != ""]
    if log:
        d = d.loc[d["y"] > 0].assign(y=lambda f: np.log(f["y"]))
    d = d.assign(treated=(d["arm"].astype(str) == treatment).astype(float)).reset_index(drop=True)
    n_ref = d.loc[d["treated"] == 0, "subject_id"].nunique()
    n_trt = d.loc[d["treated"] == 1, "subject_id"].nunique()
    base = {
        "outcome": outcome,
        "transform": "log" if log else "none",
        "time": time,
        "random_effects": RANDOM_EFFECTS.get(covariance, "none"),
        "covariance": covariance,
        "df_method": DF_METHODS[df_method] + (
            (" (as mmrm and SAS PROC MIXED)" if gls else " (as lmerTest)") if df_method == "satterthwaite" else ""
        ),
        "n_obs": len(d),
        "n_subjects": n_ref + n_trt,
        "reference_arm": reference,
        "treatment_arm": treatment,
    }

    def failed(reason: str) -> pd.DataFrame:
        row = {**base, "kind": "", "term": "", "meaning": "", "converged": False, "note": reason}
        row |= {c: math.nan for c in ("estimate", "se", "df", "ci_low", "ci_high", "p_value", "reml_loglik")}
        return pd.DataFrame([row])

    note = _too_few(n_ref, n_trt, reference, treatment, min_per_arm)
    if note:
        return failed(note)
    if d["y"].nunique() < 2:
        return failed("not estimated: all values are equal")

    order = visit_order(d, visits) if "visit" in d.columns else []
    if time == "visit":
        # values at a visit the plan does not analyse are no level of the visit factor: left out
        d = d.loc[d["visit"].isin(order)].reset_index(drop=True)
        base["n_obs"], base["n_subjects"] = len(d), d["subject_id"].nunique()
    X = pd.DataFrame({"Intercept": np.ones(len(d))})
    meaning = {"Intercept": _CONTINUOUS_TERMS["Intercept"]}
    if time == "continuous":
        X["study_day"] = d["study_day"]
        X["treated"] = d["treated"]
        X["study_day:treated"] = d["study_day"] * d["treated"]
        meaning = dict(_CONTINUOUS_TERMS)
    else:
        if len(order) < 2:
            return failed("not estimated: fewer than two visits with data")
        meaning["Intercept"] = f"reference arm at {order[0]}"
        for v in order[1:]:
            X[f"visit[{v}]"] = (d["visit"] == v).astype(float)
            meaning[f"visit[{v}]"] = f"{v} - {order[0]}, reference arm"
        X["treated"] = d["treated"]
        meaning["treated"] = f"treatment - reference at {order[0]}"
        for v in order[1:]:
            X[f"treated:visit[{v}]"] = X[f"visit[{v}]"] * d["treated"]
            meaning[f"treated:visit[{v}]"] = f"difference in change {order[0]} to {v}, treatment - reference"
        X = X.loc[:, (X != 0).any(axis=0)]
    if np.linalg.matrix_rank(X.to_numpy()) < X.shape[1]:
        return failed("not estimated: the design is singular (a visit without data in one arm?)")

    names = list(X.columns)
    contrasts, rows = [], []
    for i, term in enumerate(names):
        L = np.zeros(len(names))
        L[i] = 1.0
        contrasts.append(L)
        rows.append({"kind": "coefficient", "term": term, "meaning": meaning.get(term, term)})
    if order:
        days = d.loc[d["visit"] != ""].groupby("visit")["study_day"].median()
        for k, v in enumerate(order):
            L = np.zeros(len(names))
            L[names.index("treated")] = 1.0
            if time == "visit":
                if k and f"treated:visit[{v}]" not in names:
                    continue
                if k:
                    L[names.index(f"treated:visit[{v}]")] = 1.0
                what = f"treatment - reference at {v}"
            else:
                L[names.index("study_day:treated")] = float(days[v])
                what = f"treatment - reference at {v} (day {float(days[v]):g})"
            contrasts.append(L)
            rows.append({"kind": "difference", "term": f"difference at {v}", "meaning": what})
    contrasts_arr = np.array(contrasts)
    groups = d["subject_id"].astype(str).to_numpy()
    n_fixed = X.shape[1]

    if gls:
        visit_number = d["visit"].map({v: i for i, v in enumerate(order)}).to_numpy(dtype=int)
        repeated = pd.Series(list(zip(groups, visit_number))).duplicated()
        if repeated.any():
            return failed(f"not estimated: {int(repeated.sum())} subject(s) with two values at one visit")
        Xa, ya = X.to_numpy(dtype=float), d["y"].to_numpy(dtype=float)
        resid = ya - Xa @ np.linalg.lstsq(Xa, ya, rcond=None)[0]
        visit_var = np.array([np.mean(resid[visit_number == i] ** 2) for i in range(len(order))])
        visit_var = np.where(visit_var > 0, visit_var, max(float(np.var(ya)), 1e-12))
        try:
            theta, parts = _fit_gls(_Patterns(Xa, ya, groups, visit_number), covariance, len(order), visit_var)
        except (np.linalg.LinAlgError, ValueError, ArithmeticError, FloatingPointError) as exc:
            return failed(f"not estimated: {exc}")
        beta, C = np.asarray(parts["beta"]), np.asarray(parts["C"])
        notes: list[str] = []
        if df_method == "satterthwaite":
            dfs, df_note = _satterthwaite_df(parts, np.eye(theta.size), parts["hess_psi"], contrasts_arr)
            if df_note:
                notes.append(df_note)
        else:
            dfs = np.full(len(contrasts_arr), float(len(d) - n_fixed))
        S = np.asarray(parts["Sigma"])
        variances = {
            "random_intercept_var": math.nan,
            "random_slope_var": math.nan,
            "random_cov": math.nan,
            "residual_var": float(S[0, 0]),
            "covariance_estimates": _describe_sigma(covariance, S, order),
        }
        deviance = float(parts["deviance"])
    else:
        Z = np.ones((len(d), 1)) if not random_slope else np.column_stack([np.ones(len(d)), d["study_day"]])
        try:
            model = MixedLM(d["y"].to_numpy(), X, groups=groups, exog_re=Z)
        except ValueError as exc:
            return failed(f"not estimated: {type(exc).__name__}: {exc}")
        blocks = _Blocks(X.to_numpy(dtype=float), Z, d["y"].to_numpy(dtype=float), groups)
        attempts = []
        methods = list(OPTIMIZERS)
        if random_slope and "bounded" in methods:  # MixedLM is slow and often fails here (a singular fit)
            methods = ["bounded"] + [m for m in methods if m != "bounded"]
        for method in methods:
            if method == "bounded":
                try:
                    G, s2 = _fit_bounded(blocks, float(d["y"].var()), float(np.ptp(d["study_day"])))
                    break
                except (np.linalg.LinAlgError, ValueError, ArithmeticError) as exc:
                    attempts.append(f"{method}: {exc}")
                    continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    res = model.fit(reml=True, method=method)
                except (np.linalg.LinAlgError, ValueError) as exc:
                    attempts.append(f"{method}: {type(exc).__name__}: {exc}")
                    continue
            messages = [str(w.message) for w in caught if issubclass(w.category, (ConvergenceWarning, UserWarning))]
            boundary = any("boundary" in m for m in messages)
            # A non-positive-definite Hessian is expected when a random-effect variance sits at zero (the
            # boundary): the fixed effects and their standard errors are then those of ordinary least squares.
            problems = list(
                dict.fromkeys(m for m in messages if "failed" in m or ("not positive definite" in m and not boundary))
            )
            if res.converged and not problems and np.all(np.isfinite(res.bse_fe)):
                G = np.atleast_2d(np.asarray(res.cov_re, dtype=float))
                s2 = float(res.scale)
                break
            attempts.append(f"{method}: " + ("; ".join(problems) or "did not converge"))
        else:
            return failed("not estimated: " + " | ".join(attempts))
        if attempts:
            logger.info("%s: fitted with %s after %s", outcome, method, " | ".join(attempts))
        failed_first = ", ".join(a.partition(":")[0] for a in attempts)
        notes = [f"fitted with {method} ({failed_first} failed)"] if attempts else []

        try:
            G, s2, _ = _refine(blocks, G, s2)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            pass
        parts = _reml(blocks, G, s2, derivatives=False)
        beta, C = np.asarray(parts["beta"]), np.asarray(parts["C"])
        if np.min(np.linalg.eigvalsh(G)) <= 1e-8 * max(s2, 1e-300) * max(1.0, float(np.max(np.abs(Z)) ** 2)):
            notes.append("a random-effect variance is on the boundary (near zero; singular fit)")
        if df_method == "satterthwaite":
            dfs, df_note = _satterthwaite(blocks, G, s2, contrasts_arr)
            if df_note:
                notes.append(df_note)
        else:
            dfs = _between_within(X, groups, contrasts_arr)
        variances = {
            "random_intercept_var": float(G[0, 0]),
            "random_slope_var": float(G[1, 1]) if random_slope else math.nan,
            "random_cov": float(G[1, 0]) if random_slope else math.nan,
            "residual_var": s2,
            "covariance_estimates": "",
        }
        deviance = float(parts["deviance"])
    reml_loglik = -0.5 * (deviance + (len(d) - n_fixed) * math.log(2.0 * math.pi))
    tq = 1.0 - (1.0 - confidence) / 2.0
    baseline_terms = {"treated"} | ({f"difference at {order[0]}"} if order else set())
    out = []
    for L, row, df in zip(contrasts_arr, rows, dfs):
        est = float(L @ beta)
        se = math.sqrt(float(L @ C @ L))
        half = float(sps.t.ppf(tq, df)) * se if np.isfinite(df) else math.nan
        p = float(2.0 * sps.t.sf(abs(est / se), df)) if np.isfinite(df) and se > 0 else math.nan
        row_notes = list(notes)
        if row["term"] == "Intercept":
            p = math.nan
        elif row["term"] in baseline_terms:
            p = math.nan
            row_notes.append("baseline difference: estimate only (randomised arms, not tested)")
        out.append(
            {
                **base,
                **row,
                "estimate": est,
                "se": se,
                "df": float(df),
                "ci_low": est - half,
                "ci_high": est + half,
                "p_value": p,
                "reml_loglik": reml_loglik,
                "converged": True,
                "note": "; ".join(row_notes),
                **variances,
            }
        )
    frame = pd.DataFrame(out)
    return frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]]
