"""Statistics of a two-arm trial: the analysis plan, comparisons by outcome type, mixed models, time to event.

Everything public is imported from here (``from lungtrial import stats``; ``stats.run_plan(...)``); the modules
behind it are private, one per topic:

====================  ==========================================================================================
``_plan``             the trial's analysis plan (config ``analysis:``): :func:`load_plan` reads and checks it
``_run``              :func:`run_plan` runs every comparison the plan declares, primary endpoint first, with the
                      p values adjusted within families; :func:`analysis_tables` adds Table 1
``_plan_outcomes``    the plan's imaging, continuous and time-to-event outcomes compared by arm
``_competing``        the plan's competing risk of death: cumulative incidence per arm and Gray's test
``_ancova``           ANCOVA of the change from baseline on baseline and arm
``_multiplicity``     p values adjusted within a family (Holm, Benjamini-Hochberg) and how
``_compare``          binary and continuous comparisons of two arms, one row per outcome, and the helpers every
                      result table shares (arm check, true/false columns, number formatting)
``_baseline``         baseline values, Table 1, change from baseline of the imaging metrics; the metrics' labels
``_mixed_tables``     mixed models of every imaging metric and lab, and their sensitivity to the censoring rule
``_survival_tables``  time-to-event tables: Kaplan-Meier, log-rank, the two-arm comparison with the Cox hazard
                      ratio
``_nonparametric``    Mann-Whitney U and the Hodges-Lehmann shift with its Moses interval, as R's ``wilcox.test``
``_fisher``           conditional maximum-likelihood odds ratio with its exact interval, as R's ``fisher.test``
``_survival``         Kaplan-Meier median, Cox hazard ratio, Aalen-Johansen cumulative incidence, as R's survival;
                      Gray's test of cumulative incidence, as cmprsk
``_mixed``            linear mixed models (random effects, or a residual covariance across visits: MMRM) with
                      Satterthwaite, between-within or N - p df, as lmerTest, mmrm and nlme: the fit and its table
``_mixed_choices``    the mixed models' choices (time, covariance, df method) and the table's leading columns
``_mixed_reml``       the REML criterion with its exact gradient and Hessian, Satterthwaite's df from them
``_mixed_random``     random effects per subject: refinement of statsmodels' optimum, the bounded fit (a singular
                      fit), lmerTest's Satterthwaite and nlme's between-within df
``_mixed_gls``        residual covariance across visits (unstructured, compound symmetry, AR(1)) and its fit
``_censoring``        censored lab values (``<L``, ``>L``): one substitution rule and its sensitivity analysis
====================  ==========================================================================================

The names are loaded on first use (PEP 562), so that reading the analysis plan when the workflow starts costs
no scipy, statsmodels or lifelines import.
"""

from __future__ import annotations

import lazy_loader

_EXPORTS: dict[str, tuple[str, ...]] = {
    "_plan": (
        "ANALYSES",
        "COVARIANCE_CHOICES",
        "DEFAULT_COVARIANCE",
        "DERIVED_SUBJECT_COLUMNS",
        "MULTIPLICITY",
        "OUTCOME_TYPES",
        "ROLES",
        "Outcome",
        "Plan",
        "check_columns",
        "load_plan",
    ),
    "_ancova": ("ancova",),
    "_multiplicity": ("adjust", "adjust_families", "adjustment_text"),
    "_plan_outcomes": ("imaging_outcomes", "survival_outcomes"),
    "_competing": ("competing_risk_outcomes",),
    "_run": ("analysis_tables", "run_plan"),
    "_compare": (
        "as_bool",
        "binary_outcomes",
        "check_arms",
        "compare_binary",
        "compare_continuous",
        "continuous_outcomes",
        "event_indicator",
        "fmt_num",
        "last_lab_value",
        "median_iqr",
        "risk_difference",
    ),
    "_baseline": (
        "BASELINE_IMAGING",
        "IMAGING_ENDPOINTS",
        "TABLE1_QUARTILES",
        "TABLE1_ROUNDING",
        "baseline_labs",
        "baseline_values",
        "before_first_dose",
        "change_from_baseline",
        "imaging_change",
        "metric_label",
        "metric_unit",
        "table1",
        "table1_decimals",
    ),
    "_mixed_tables": (
        "MIXED_COLUMNS",
        "censored_for_model",
        "is_skewed",
        "censoring_sensitivity_table",
        "mixed_models",
        "mixed_models_censoring_sensitivity",
        "mixed_models_table",
    ),
    "_survival_tables": (
        "SURVIVAL_ENDPOINTS",
        "compare_survival",
        "kaplan_meier",
        "logrank",
        "survival",
        "survival_data",
    ),
    "_nonparametric": ("hodges_lehmann", "mann_whitney", "mwu_null_counts"),
    "_fisher": ("fisher_odds_ratio",),
    "_survival": (
        "cox_hazard_ratio",
        "cox_separation",
        "cumulative_incidence",
        "gray_test",
        "km_median",
        "survival_quantile",
    ),
    "_mixed": ("mixed_model", "visit_order"),
    "_mixed_choices": ("COVARIANCES", "DF_METHODS", "RANDOM_EFFECTS", "RESIDUAL_COVARIANCES", "TIMES"),
    "_censoring": (
        "CENSOR_RULES",
        "DEFAULT_CENSOR_RULE",
        "censor_values",
        "censoring_changes_ranks",
        "censoring_sensitivity",
        "limits_as_text",
    ),
}
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs=_EXPORTS)
