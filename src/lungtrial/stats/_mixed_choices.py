"""What a mixed model (:func:`lungtrial.stats.mixed_model`) can be asked for, and the layout of its table.

The choices of time, covariance and degrees of freedom with the words the output uses for them, the meaning of the
continuous-time model's terms and the table's leading columns. Plain data: importing it costs no numpy or scipy.
"""

from __future__ import annotations

DF_METHODS: dict[str, str] = {
    "satterthwaite": "Satterthwaite",
    "between-within": "between-within (as nlme::lme)",
    "residual": "N - p (as nlme::gls)",
}
"""Small-sample degrees-of-freedom methods and how the output names them (Satterthwaite's as lmerTest computes it
for random effects and as the R package mmrm and SAS PROC MIXED for a residual covariance)."""

RANDOM_EFFECTS: dict[str, str] = {
    "random-intercept": "intercept",
    "random-slope": "intercept + slope (study day)",
}
"""Random-effects choices of ``covariance`` and the random effects per subject they give."""

RESIDUAL_COVARIANCES: dict[str, str] = {
    "unstructured": "unstructured (a variance per visit, a correlation per pair of visits)",
    "compound-symmetry": "compound symmetry (one variance, one correlation between any two visits)",
    "ar1": "first-order autoregressive (one variance; correlation rho^|j - k| between visits number j and k)",
}
"""Residual covariance structures across visits within a subject (GLS, no random effects)."""

COVARIANCES: dict[str, str] = {
    "random-intercept": "random intercept per subject",
    "random-slope": "random intercept and slope on study day per subject (unstructured 2 x 2)",
    **RESIDUAL_COVARIANCES,
}
"""Every ``covariance`` of :func:`mixed_model` (config ``analysis.covariance``) and what it means."""

TIMES = ("visit", "continuous")
"""How time enters the model: nominal visit as a factor, or study day as a straight line."""

_CONTINUOUS_TERMS = {
    "Intercept": "reference arm at day 0",
    "study_day": "slope per day, reference arm",
    "treated": "treatment - reference at day 0",
    "study_day:treated": "slope difference per day, treatment - reference",
}

COLUMNS = [
    "outcome",
    "transform",
    "time",
    "random_effects",
    "covariance",
    "kind",
    "term",
    "meaning",
    "estimate",
    "se",
    "df",
    "ci_low",
    "ci_high",
    "p_value",
    "df_method",
    "n_obs",
    "n_subjects",
    "reml_loglik",
    "converged",
    "note",
]
"""Leading columns of :func:`mixed_model`'s table (the arms and variance components follow)."""
