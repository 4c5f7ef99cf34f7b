"""A residual covariance across the visits within a subject, no random effects (the MMRM of clinical trials).

For :func:`lungtrial.stats.mixed_model` with ``covariance`` ``unstructured``, ``compound-symmetry`` or ``ar1``
(:data:`lungtrial.stats.RESIDUAL_COVARIANCES`): the K x K covariance and its first and second derivatives in
unconstrained parameters (:func:`_sigma`), the REML fit by scipy's trust-region Newton method with the exact
gradient and Hessian (:func:`_fit_gls`), and the estimate in words (:func:`_describe_sigma`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lungtrial.stats._mixed_choices import RESIDUAL_COVARIANCES
from lungtrial.stats._mixed_reml import _psi_index, _reml_core


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
