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
  ``corSymm``), so the REML criterion, its exact gradient and Hessian are written here
  (:func:`_reml_core`) and minimised by scipy's trust-region Newton method (``trust-exact``).

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
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

logger = logging.getLogger(__name__)

OPTIMIZERS: tuple[str, ...] = ("bfgs", "lbfgs", "powell", "nm", "bounded")
"""Optimisers tried in turn: statsmodels MixedLM's until one converges with a positive-definite Hessian, then
``"bounded"``: L-BFGS-B on the REML criterion in lme4's parametrisation with the relative Cholesky factor's
diagonal bounded at zero, which, as lme4, also reaches an optimum on the boundary (a singular fit: a random
effect's variance zero, or random intercept and slope perfectly correlated) where MixedLM's optimisers fail.
A model with a random slope tries ``"bounded"`` first: MixedLM's optimisers are much slower there and fail on
some outcomes where the bounded fit converges."""

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


def _too_few(n_ref: int, n_trt: int, reference: str, treatment: str, min_per_arm: int) -> str:
    small = [f"{arm} has n={n}" for arm, n in ((reference, n_ref), (treatment, n_trt)) if n < min_per_arm]
    if not small:
        return ""
    return "not tested: " + ", ".join(small) + f" with data (fewer than min_per_arm={min_per_arm})"


def visit_order(data: pd.DataFrame, visits: Sequence[str] | None = None) -> list[str]:
    """Visits present in ``data`` (column ``visit``), in the order of ``visits`` or else by median study day."""
    present = data["visit"].fillna("").astype(str)
    present = present[present != ""]
    if visits is not None:
        return [str(v) for v in visits if str(v) in set(present)]
    med = data.assign(visit=present).dropna(subset=["visit"]).groupby("visit")["study_day"].median()
    return [str(v) for v in med.sort_values(kind="stable").index]


class _Blocks:
    """The data per subject, stacked by number of observations so that per-subject algebra is batched."""

    def __init__(self, X: np.ndarray, Z: np.ndarray, y: np.ndarray, groups: np.ndarray) -> None:
        order = np.argsort(groups, kind="stable")
        X, Z, y, groups = X[order], Z[order], y[order], groups[order]
        _, start, counts = np.unique(groups, return_index=True, return_counts=True)
        self.sets = []
        for size in np.unique(counts):
            idx = np.concatenate([np.arange(s, s + size) for s in start[counts == size]]).reshape(-1, size)
            self.sets.append((X[idx], Z[idx], y[idx]))
        self.p, self.q, self.n = X.shape[1], Z.shape[1], y.size


def _sym_unit(q: int, a: int, b: int) -> np.ndarray:
    e = np.zeros((q, q))
    e[a, b] = e[b, a] = 1.0
    return e


def _psi_index(q: int) -> list[tuple[int, int]]:
    """Lower-triangle entries (a >= b) of the random-effects covariance, column by column as lme4 orders theta."""
    return [(a, b) for b in range(q) for a in range(b, q)]


def _reml_core(sets: Sequence[tuple], derivatives: bool = True) -> dict[str, object]:
    """REML deviance (-2 log-likelihood without its constant ``(N - p) log(2 pi)``) of ``y ~ N(X beta, V)``, the GLS
    fixed effects and their covariance and, with ``derivatives``, the gradient and Hessian of the deviance with
    respect to the covariance parameters psi.

    ``sets`` holds groups of subjects with the same number of observations ``s``: ``(X, y, V, dV, d2V)`` with X of
    shape (n, s, p), y (n, s), V (n, s, s), ``dV`` the list of dV/dpsi_k (each (n, s, s)) and ``d2V`` a dict
    ``{(j, k): d2V/dpsi_j dpsi_k}`` (j <= k; pairs left out are zero, as everywhere when V is linear in psi).
    With P = V^-1 - V^-1 X C X' V^-1 and C = (X' V^-1 X)^-1 (Harville 1977):
    dD/dpsi_k = tr(P V_k) - y'P V_k P y;
    d2D/dpsi_j dpsi_k = -tr(P V_j P V_k) + 2 y'P V_j P V_k P y + tr(P V_jk) - y'P V_jk P y.
    ``M[k]`` = X' V^-1 V_k V^-1 X (dC/dpsi_k = -C M[k] C), for Satterthwaite's df.
    """
    p = sets[0][0].shape[2]
    n_par = len(sets[0][3])
    xtwx = np.zeros((p, p))
    xtwy = np.zeros(p)
    logdet_v = 0.0
    cache = []
    for X, y, V, dV, d2V in sets:
        W = np.linalg.inv(V)
        logdet_v += float(np.sum(np.linalg.slogdet(V)[1]))
        WX = W @ X
        xtwx += np.einsum("nsp,nsr->pr", X, WX)
        xtwy += np.einsum("nsp,ns->p", WX, y)
        cache.append((X, y, W, WX, dV, d2V))
    C = np.linalg.inv(xtwx)
    beta = C @ xtwy
    quad = 0.0
    out: dict[str, object] = {"beta": beta, "C": C}
    if derivatives:
        tr_wv = np.zeros(n_par)
        M = np.zeros((n_par, p, p))
        tr_wvwv = np.zeros((n_par, n_par))
        N_ij = np.zeros((n_par, n_par, p, p))
        uwu = np.zeros((n_par, n_par))
        xwu = np.zeros((n_par, p))
        ypvpy = np.zeros(n_par)
        second = np.zeros((n_par, n_par))  # tr(W V_jk) - y'P V_jk P y, before the C terms
        second_M = {}
    for X, y, W, WX, dV, d2V in cache:
        r = y - X @ beta
        wr = np.einsum("nst,nt->ns", W, r)
        quad += float(np.sum(r * wr))
        if not derivatives:
            continue
        WV = [W @ v for v in dV]
        U = [np.einsum("nst,nt->ns", v, wr) for v in dV]
        for i in range(n_par):
            tr_wv[i] += float(np.einsum("nss->", WV[i]))
            M[i] += np.einsum("nsp,nsr->pr", WX, dV[i] @ WX)  # X' W V_i W X
            xwu[i] += np.einsum("nsp,ns->p", WX, U[i])
            ypvpy[i] += float(np.sum(wr * U[i]))  # P y = W r per subject
            for j in range(i, n_par):
                tr_wvwv[i, j] += float(np.einsum("nst,nts->", WV[i], WV[j]))
                N_ij[i, j] += np.einsum("nsp,nsr->pr", WX, dV[i] @ WV[j] @ WX)  # X' W V_i W V_j W X
                uwu[i, j] += float(np.einsum("ns,nst,nt->", U[i], W, U[j]))
        for (i, j), v in d2V.items():
            second[i, j] += float(np.einsum("nst,nts->", W, v)) - float(np.einsum("ns,nst,nt->", wr, v, wr))
            second_M[i, j] = second_M.get((i, j), 0.0) + np.einsum("nsp,nsr->pr", WX, v @ WX)
    logdet_x = float(np.linalg.slogdet(xtwx)[1])
    out["deviance"] = logdet_v + logdet_x + quad
    if derivatives:
        grad = np.array([tr_wv[i] - np.trace(C @ M[i]) - ypvpy[i] for i in range(n_par)])
        hess = np.zeros((n_par, n_par))
        for i in range(n_par):
            for j in range(i, n_par):
                tr_pvpv = tr_wvwv[i, j] - 2.0 * np.trace(C @ N_ij[i, j]) + np.trace(C @ M[i] @ C @ M[j])
                ypvpvpy = uwu[i, j] - xwu[i] @ C @ xwu[j]
                extra = second[i, j] - np.trace(C @ second_M[i, j]) if (i, j) in second_M else 0.0
                hess[i, j] = hess[j, i] = -tr_pvpv + 2.0 * ypvpvpy + extra
        out |= {"grad_psi": grad, "hess_psi": hess, "M": M}
    return out


def _reml(blocks: _Blocks, G: np.ndarray, s2: float, derivatives: bool = True) -> dict[str, object]:
    """:func:`_reml_core` of the random-effects model, psi = (lower-triangle entries of G, residual variance).

    V_i = Z_i G Z_i' + s2 I per subject; V is linear in psi, so its derivatives are constant and the second ones zero.
    """
    q = blocks.q
    sets = []
    for X, Z, y in blocks.sets:
        s = X.shape[1]
        Zt = np.swapaxes(Z, 1, 2)
        V = Z @ G @ Zt + s2 * np.eye(s)
        dV = [Z @ _sym_unit(q, a, b) @ Zt for a, b in _psi_index(q)] if derivatives else []
        dV.append(np.broadcast_to(np.eye(s), (X.shape[0], s, s)))
        sets.append((X, y, V, dV, {}))
    return _reml_core(sets, derivatives)


def _lower_cholesky(A: np.ndarray) -> np.ndarray:
    """Lower-triangular L with L L' = A for a positive semi-definite A (zeros where A is singular)."""
    q = A.shape[0]
    L = np.zeros_like(A)
    for j in range(q):
        d = A[j, j] - L[j, :j] @ L[j, :j]
        L[j, j] = math.sqrt(d) if d > 0 else 0.0
        for i in range(j + 1, q):
            L[i, j] = (A[i, j] - L[i, :j] @ L[j, :j]) / L[j, j] if L[j, j] > 0 else 0.0
    return L


def _phi_to_psi(phi: np.ndarray, q: int) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """lme4's parameters phi = (theta: Lambda's lower triangle column by column, sigma) to G, s2, and the first
    (J: psi by phi) and second derivatives of psi = (G's lower triangle, s2)."""
    idx = _psi_index(q)
    k = len(idx)
    theta, sigma = phi[:k], float(phi[k])
    Lam = np.zeros((q, q))
    for t, (a, b) in enumerate(idx):
        Lam[a, b] = theta[t]
    LL = Lam @ Lam.T
    G = sigma**2 * LL
    D = []
    for a, b in idx:
        e = np.zeros((q, q))
        e[a, b] = 1.0
        D.append(e)
    n = k + 1
    dG = np.zeros((n, q, q))  # dG / dphi_t
    d2G = np.zeros((n, n, q, q))
    for t in range(k):
        dLL = D[t] @ Lam.T + Lam @ D[t].T
        dG[t] = sigma**2 * dLL
        d2G[t, k] = d2G[k, t] = 2.0 * sigma * dLL
        for u in range(k):
            d2G[t, u] = sigma**2 * (D[t] @ D[u].T + D[u] @ D[t].T)
    dG[k] = 2.0 * sigma * LL
    d2G[k, k] = 2.0 * LL
    J = np.zeros((n, n))
    H2 = np.zeros((n, n, n))  # H2[m] = d2 psi_m / dphi dphi'
    for m, (a, b) in enumerate(idx):
        J[m, :] = dG[:, a, b]
        H2[m] = d2G[:, :, a, b]
    J[k, k] = 2.0 * sigma
    H2[k, k, k] = 2.0
    return G, sigma**2, J, H2


def _phi_from(G: np.ndarray, s2: float) -> np.ndarray:
    sigma = math.sqrt(s2)
    Lam = _lower_cholesky(G / s2)
    return np.array([Lam[a, b] for a, b in _psi_index(G.shape[0])] + [sigma])


def _refine(blocks: _Blocks, G: np.ndarray, s2: float, max_iter: int = 50) -> tuple[np.ndarray, float, int]:
    """Newton steps on the REML deviance in lme4's parametrisation from a nearby optimum (statsmodels').

    A step is kept only when it lowers the deviance (halving it up to 30 times) and keeps Lambda's diagonal
    non-negative; it stops when the step is below 1e-10 relative or the Hessian is not positive definite.
    Returns G, s2 and the number of steps taken.
    """
    q = G.shape[0]
    phi = _phi_from(G, s2)
    diag = [t for t, (a, b) in enumerate(_psi_index(q)) if a == b]
    steps = 0
    for _ in range(max_iter):
        Gc, s2c, J, H2 = _phi_to_psi(phi, q)
        parts = _reml(blocks, Gc, s2c)
        g = J.T @ parts["grad_psi"]
        H = J.T @ parts["hess_psi"] @ J + np.einsum("m,mij->ij", parts["grad_psi"], H2)
        try:
            np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            break
        step = -np.linalg.solve(H, g)
        dev0 = parts["deviance"]
        for _ in range(30):
            new = phi + step
            if np.all(new[diag] >= 0) and new[-1] > 0:
                Gn, s2n, _, _ = _phi_to_psi(new, q)
                if _reml(blocks, Gn, s2n, derivatives=False)["deviance"] <= dev0 + 1e-12 * abs(dev0):
                    break
            step = step / 2.0
        else:
            break
        phi = phi + step
        steps += 1
        if np.max(np.abs(step) / np.maximum(np.abs(phi), 1e-8)) < 1e-10:
            break
    G, s2, _, _ = _phi_to_psi(phi, q)
    return G, s2, steps


def _phi_derivatives(blocks: _Blocks, phi: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """REML deviance, gradient and Hessian in lme4's parameters phi = (theta, sigma)."""
    G, s2, J, H2 = _phi_to_psi(phi, blocks.q)
    parts = _reml(blocks, G, s2)
    grad = J.T @ parts["grad_psi"]
    hess = J.T @ parts["hess_psi"] @ J + np.einsum("m,mij->ij", parts["grad_psi"], H2)
    return float(parts["deviance"]), grad, hess


def _fit_bounded(blocks: _Blocks, var_y: float, day_range: float) -> tuple[np.ndarray, float]:
    """REML fit by L-BFGS-B over lme4's parameters (theta >= 0 on the diagonal, sigma > 0) with exact gradient.

    Starts from half the outcome's variance between subjects and half within (the slope's standard deviation a
    tenth of the intercept's over the study-day range). A diagonal theta at zero is a stationary point of the
    deviance whatever its curvature (the deviance is even in it), so where L-BFGS-B stops at a point whose
    Hessian has a negative eigenvalue it steps along that direction and starts again. Raises ``ValueError``
    when it does not converge.
    """
    from scipy.optimize import minimize

    q = blocks.q
    idx = _psi_index(q)
    diag = np.array([a == b for a, b in idx] + [False])
    var_y = var_y if np.isfinite(var_y) and var_y > 0 else 1.0
    theta0 = np.array([1.0 if a == b == 0 else (0.1 / max(day_range, 1.0) if a == b else 0.0) for a, b in idx])
    phi = np.concatenate([theta0, [math.sqrt(var_y / 2.0)]])
    bounds = [(0.0, None) if a == b else (None, None) for a, b in idx] + [(1e-8 * math.sqrt(var_y), None)]
    lower = np.array([lo for lo, _ in bounds], dtype=float)

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        G, s2, J, _ = _phi_to_psi(x, q)
        parts = _reml(blocks, G, s2)
        return float(parts["deviance"]), J.T @ parts["grad_psi"]

    options = {"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9}
    for _ in range(6):
        res = minimize(fun, phi, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
        if not np.all(np.isfinite(res.x)) or not (res.success or np.max(np.abs(res.jac)) < 1e-4):
            raise ValueError(f"L-BFGS-B on the REML criterion did not converge ({res.message})")
        phi = res.x
        dev, _, hess = _phi_derivatives(blocks, phi)
        w, vecs = np.linalg.eigh(hess)
        if w[0] >= -1e-8 * max(1.0, float(np.max(np.abs(w)))):
            break
        v = vecs[:, 0]
        at_zero = diag & (phi <= 0)
        if np.any(v[at_zero] < 0):
            v = -v
        for t in (1.0, 0.1, 0.01, 0.001):
            trial = phi + t * v * max(1.0, float(np.max(np.abs(phi))))
            trial[diag] = np.maximum(trial[diag], 0.0)
            trial[~diag & np.isfinite(lower)] = np.maximum(
                trial[~diag & np.isfinite(lower)], lower[~diag & np.isfinite(lower)]
            )
            if fun(trial)[0] < dev:
                phi = trial
                break
        else:
            break
    G, s2, _, _ = _phi_to_psi(phi, q)
    return G, s2


def _satterthwaite_df(parts: dict, J: np.ndarray, H: np.ndarray, contrasts: np.ndarray) -> tuple[np.ndarray, str]:
    """Satterthwaite's df of each contrast L (rows of ``contrasts``): 2 (L'CL)^2 / (g' A g), with g the gradient
    of L'CL in the covariance parameters theta and A = 2 H^-1 their asymptotic covariance (H: the Hessian of the
    REML deviance in theta, at the optimum). ``parts`` is :func:`_reml_core` at the optimum (psi its parameters);
    ``J`` = dpsi/dtheta (the identity when theta is psi). The df do not depend on the parametrisation."""
    try:
        A = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.full(len(contrasts), math.nan), "Satterthwaite df not available: singular REML Hessian"
    note = ""
    if np.any(np.linalg.eigvalsh(H) <= 0):
        note = "REML Hessian not positive definite: Satterthwaite df unreliable"
    C, M = parts["C"], parts["M"]
    out = []
    for L in contrasts:
        var = float(L @ C @ L)
        g = J.T @ np.array([L @ C @ M[i] @ C @ L for i in range(M.shape[0])])
        denom = float(g @ A @ g)
        out.append(2.0 * var**2 / denom if denom > 0 else math.nan)
    return np.array(out), note


def _satterthwaite(blocks: _Blocks, G: np.ndarray, s2: float, contrasts: np.ndarray) -> tuple[np.ndarray, str]:
    """Satterthwaite df of each contrast (rows of ``contrasts``), lmerTest's way (in lme4's parameters), with exact
    derivatives."""
    _, _, J, H2 = _phi_to_psi(_phi_from(G, s2), G.shape[0])
    parts = _reml(blocks, G, s2)
    H = J.T @ parts["hess_psi"] @ J + np.einsum("m,mij->ij", parts["grad_psi"], H2)
    return _satterthwaite_df(parts, J, H, contrasts)


# ------------------------------------------------------------------ residual covariance across visits (GLS)
class _Patterns:
    """The data per subject grouped by the visits observed (visit numbers 0..K-1), for batched GLS algebra."""

    def __init__(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray, k: np.ndarray) -> None:
        order = np.lexsort((k, groups))
        X, y, groups, k = X[order], y[order], groups[order], k[order]
        _, start, counts = np.unique(groups, return_index=True, return_counts=True)
        by_pattern: dict[tuple[int, ...], list[np.ndarray]] = {}
        for s0, c in zip(start, counts):
            rows = np.arange(s0, s0 + c)
            by_pattern.setdefault(tuple(int(v) for v in k[rows]), []).append(rows)
        self.sets = [
            (X[np.array(rows)], y[np.array(rows)], np.array(pattern)) for pattern, rows in sorted(by_pattern.items())
        ]


def _expit(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _sigma(structure: str, theta: np.ndarray, K: int) -> tuple[np.ndarray, list[np.ndarray], dict]:
    """The K x K covariance across visits, its first derivatives and its non-zero second derivatives in theta.

    ``unstructured``: Sigma = L L' with L lower triangular, theta = (log L_aa on the diagonal, L_ab below) column by
    column; ``compound-symmetry``: sigma^2 ((1 - rho) I + rho J), theta = (log sigma^2,
    logit((rho - lo) / (1 - lo))), lo = -1 / (K - 1); ``ar1``: sigma^2 rho^|j - k| (j, k the visits' numbers),
    theta = (log sigma^2, atanh rho). Every theta is unconstrained and gives a positive-definite Sigma.
    """
    if structure == "unstructured":
        idx = _psi_index(K)
        L = np.zeros((K, K))
        for t, (a, b) in enumerate(idx):
            L[a, b] = math.exp(theta[t]) if a == b else theta[t]
        dL = []
        for t, (a, b) in enumerate(idx):
            e = np.zeros((K, K))
            e[a, b] = L[a, b] if a == b else 1.0
            dL.append(e)
        S = L @ L.T
        dS = [e @ L.T + L @ e.T for e in dL]
        d2S = {}
        for t, (a, b) in enumerate(idx):
            for u in range(t, len(idx)):
                bu = idx[u][1]
                if bu != b:
                    continue
                v = dL[t] @ dL[u].T + dL[u] @ dL[t].T
                if t == u and a == b:
                    v = v + dS[t]
                d2S[t, u] = v
        return S, dS, d2S
    s2 = math.exp(theta[0])
    lag = np.abs(np.subtract.outer(np.arange(K), np.arange(K))).astype(float)
    if structure == "compound-symmetry":
        lo = -1.0 / (K - 1) if K > 1 else -1.0
        e = _expit(float(theta[1]))
        rho = lo + (1.0 - lo) * e
        r1 = (1.0 - lo) * e * (1.0 - e)
        r2 = r1 * (1.0 - 2.0 * e)
        off = (lag > 0).astype(float)
        R, R1, R2 = np.eye(K) + rho * off, r1 * off, r2 * off
    elif structure == "ar1":
        rho = math.tanh(float(theta[1]))
        r1 = 1.0 - rho**2
        r2 = -2.0 * rho * r1
        R = np.where(lag > 0, rho ** np.maximum(lag, 1.0), 1.0)
        dR = np.where(lag >= 1, lag * rho ** np.maximum(lag - 1.0, 0.0), 0.0)
        d2R = np.where(lag >= 2, lag * (lag - 1.0) * rho ** np.maximum(lag - 2.0, 0.0), 0.0)
        R1, R2 = dR * r1, d2R * r1**2 + dR * r2
    else:
        raise ValueError(f"covariance={structure!r}: expected one of {', '.join(RESIDUAL_COVARIANCES)}")
    S = s2 * R
    return S, [S, s2 * R1], {(0, 0): S, (0, 1): s2 * R1, (1, 1): s2 * R2}


def _gls_parts(patterns: _Patterns, structure: str, theta: np.ndarray, K: int, derivatives: bool = True) -> dict:
    """:func:`_reml_core` of the GLS model with the covariance ``structure`` across visits at ``theta``."""
    S, dS, d2S = _sigma(structure, theta, K)
    sets = []
    for X, y, idx in patterns.sets:
        sub = np.ix_(idx, idx)
        shape = (X.shape[0], idx.size, idx.size)
        sets.append(
            (
                X,
                y,
                np.broadcast_to(S[sub], shape),
                [np.broadcast_to(a[sub], shape) for a in dS],
                {key: np.broadcast_to(a[sub], shape) for key, a in d2S.items()} if derivatives else {},
            )
        )
    out = _reml_core(sets, derivatives)
    out["Sigma"] = S
    return out


def _gls_start(structure: str, visit_var: np.ndarray) -> np.ndarray:
    """Starting theta: the visits' residual variances of ordinary least squares, correlation 0 (unstructured) or
    0.5."""
    K = visit_var.size
    if structure == "unstructured":
        return np.array([0.5 * math.log(visit_var[a]) if a == b else 0.0 for a, b in _psi_index(K)])
    s2 = math.log(float(np.mean(visit_var)))
    if structure == "compound-symmetry":
        lo = -1.0 / (K - 1) if K > 1 else -1.0
        e = (0.5 - lo) / (1.0 - lo)
        return np.array([s2, math.log(e / (1.0 - e))])
    return np.array([s2, math.atanh(0.5)])


def _fit_gls(patterns: _Patterns, structure: str, K: int, visit_var: np.ndarray) -> tuple[np.ndarray, dict]:
    """REML fit of the covariance across visits: scipy's trust-region Newton method (``trust-exact``) with the
    exact gradient and Hessian of the REML deviance. Returns theta and :func:`_gls_parts` at it; raises
    ``ValueError`` when it does not converge to a minimum with a positive-definite Hessian (e.g. a correlation
    running to +-1 or a variance to 0)."""
    from scipy.optimize import minimize

    cache: dict[bytes, dict] = {}

    def parts(theta: np.ndarray) -> dict:
        key = np.asarray(theta, dtype=float).tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = _gls_parts(patterns, structure, np.asarray(theta, dtype=float), K)
        return cache[key]

    with np.errstate(over="raise", invalid="raise"):
        res = minimize(
            lambda t: float(parts(t)["deviance"]),
            _gls_start(structure, visit_var),
            jac=lambda t: parts(t)["grad_psi"],
            hess=lambda t: parts(t)["hess_psi"],
            method="trust-exact",
            options={"gtol": 1e-9, "maxiter": 500},
        )
    theta = np.asarray(res.x, dtype=float)
    final = _gls_parts(patterns, structure, theta, K)
    grad, hess = final["grad_psi"], final["hess_psi"]
    if not np.all(np.isfinite(grad)) or np.max(np.abs(grad)) > 1e-5 * max(1.0, abs(float(final["deviance"]))):
        raise ValueError(f"trust-region Newton on the REML criterion did not converge ({res.message})")
    if np.min(np.linalg.eigvalsh(hess)) <= 0:
        raise ValueError("no REML minimum with a positive-definite Hessian (a variance or correlation at its limit)")
    return theta, final


def _describe_sigma(structure: str, S: np.ndarray, order: Sequence[str]) -> str:
    """The estimated covariance across visits in words, e.g. ``variance 10.3, correlation 0.762``."""
    sd = np.sqrt(np.diag(S))
    R = S / np.outer(sd, sd)
    if structure == "compound-symmetry":
        return f"variance {S[0, 0]:.4g}, correlation {R[0, 1]:.3g}" if S.shape[0] > 1 else f"variance {S[0, 0]:.4g}"
    if structure == "ar1":
        return f"variance {S[0, 0]:.4g}, correlation of consecutive visits {R[0, 1]:.3g}" if S.shape[0] > 1 else (
            f"variance {S[0, 0]:.4g}"
        )
    variances = ", ".join(f"{v} {S[i, i]:.4g}" for i, v in enumerate(order))
    pairs = [(i, j) for j in range(len(order)) for i in range(j + 1, len(order))]
    corr = ", ".join(f"{order[j]}-{order[i]} {R[i, j]:.3g}" for i, j in pairs)
    return f"variances {variances}; correlations {corr}"


def _between_within(X: pd.DataFrame, groups: np.ndarray, contrasts: np.ndarray) -> np.ndarray:
    """nlme's denominator df per coefficient (``getFixDF`` for one grouping level), then per contrast the smallest
    df of the coefficients it uses."""
    n_sub = int(pd.Series(groups).nunique())
    n = len(X)
    const = np.array([np.allclose(X[c], X[c].iloc[0]) for c in X.columns])
    varies = np.array(
        [
            bool((pd.DataFrame({"g": groups, "x": X[c].to_numpy()}).groupby("g")["x"].nunique() > 1).any())
            for c in X.columns
        ]
    )
    df_between = n_sub - int(np.sum(~const & ~varies)) - (1 if const.any() else 0)
    df_within = n - n_sub - int(np.sum(~const & varies))
    if not const.any():
        df_within += 1
    per_coef = np.where(const, max(df_between, df_within), np.where(varies, df_within, df_between)).astype(float)
    return np.array([float(np.min(per_coef[np.abs(L) > 0])) for L in contrasts])


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
