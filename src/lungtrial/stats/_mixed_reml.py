"""The REML criterion shared by the mixed models' two kinds of covariance.

A linear model ``y ~ N(X beta, V)`` with V block-diagonal by subject and a function of covariance parameters psi:
:func:`_reml_core` gives the REML deviance, the GLS fixed effects and their covariance and, on request, the exact
gradient and Hessian of the deviance in psi; :func:`_satterthwaite_df` turns them into Satterthwaite's degrees of
freedom of any contrast. Random effects per subject (:mod:`lungtrial.stats._mixed_random`) and a residual covariance
across visits (:mod:`lungtrial.stats._mixed_gls`) each build V and its derivatives and call these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


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
