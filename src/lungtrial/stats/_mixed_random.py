"""Random effects per subject for :func:`lungtrial.stats.mixed_model` (``random-intercept``, ``random-slope``).

V_i = Z_i G Z_i' + s2 I per subject. In lme4's parametrisation (relative Cholesky factor Lambda and residual
standard deviation): Newton steps on the exact REML criterion that refine statsmodels ``MixedLM``'s optimum
(:func:`_refine`), the bounded L-BFGS-B fit that also reaches a singular fit on the boundary (:func:`_fit_bounded`),
Satterthwaite's df as lmerTest computes them (:func:`_satterthwaite`) and ``nlme::lme``'s between-within df
(:func:`_between_within`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lungtrial.stats._mixed_reml import _psi_index, _reml_core, _satterthwaite_df


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


def _satterthwaite(blocks: _Blocks, G: np.ndarray, s2: float, contrasts: np.ndarray) -> tuple[np.ndarray, str]:
    """Satterthwaite df of each contrast (rows of ``contrasts``), lmerTest's way (in lme4's parameters), with exact
    derivatives."""
    _, _, J, H2 = _phi_to_psi(_phi_from(G, s2), G.shape[0])
    parts = _reml(blocks, G, s2)
    H = J.T @ parts["hess_psi"] @ J + np.einsum("m,mij->ij", parts["grad_psi"], H2)
    return _satterthwaite_df(parts, J, H, contrasts)


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
