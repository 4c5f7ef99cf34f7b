"""Tests for lungtrial.stats._mixed_reml: the REML criterion, its exact derivatives, Satterthwaite's df."""

from __future__ import annotations

import numpy as np

from lungtrial.stats._mixed_reml import _psi_index, _reml_core, _satterthwaite_df


def test_psi_index_is_lme4_order():
    assert _psi_index(1) == [(0, 0)]
    assert _psi_index(2) == [(0, 0), (1, 0), (1, 1)]
    assert len(_psi_index(4)) == 10


def data(n=12, s=3, seed=0):
    rng = np.random.default_rng(seed)
    X = np.stack([np.ones((n, s)), rng.normal(size=(n, s))], axis=2)
    y = X @ np.array([1.0, 0.5]) + rng.normal(size=(n, 1)) + rng.normal(size=(n, s))
    return X, y


def compound(X, y, psi):
    """V = psi0 J + psi1 I per subject: linear in psi."""
    n, s, _ = X.shape
    J, eye = np.ones((n, s, s)), np.broadcast_to(np.eye(s), (n, s, s))
    return [(X, y, psi[0] * J + psi[1] * eye, [J, eye], {})]


def test_iid_errors_give_ols_and_the_closed_form_deviance():
    X, y = data()
    s2 = 1.7
    out = _reml_core(compound(X, y, [0.0, s2]))
    Xf, yf = X.reshape(-1, 2), y.ravel()
    beta = np.linalg.lstsq(Xf, yf, rcond=None)[0]
    rss = float(np.sum((yf - Xf @ beta) ** 2))
    assert np.allclose(out["beta"], beta)
    assert np.allclose(out["C"], s2 * np.linalg.inv(Xf.T @ Xf))
    expected = yf.size * np.log(s2) + np.linalg.slogdet(Xf.T @ Xf / s2)[1] + rss / s2
    assert np.isclose(out["deviance"], expected)


def test_gradient_and_hessian_are_exact():
    X, y = data()
    psi = np.array([0.8, 1.3])
    out = _reml_core(compound(X, y, psi))
    h = 1e-5
    for k in range(2):
        e = np.zeros(2)
        e[k] = h
        plus, minus = _reml_core(compound(X, y, psi + e)), _reml_core(compound(X, y, psi - e))
        assert np.isclose(out["grad_psi"][k], (plus["deviance"] - minus["deviance"]) / (2 * h), rtol=1e-6)
        assert np.allclose(out["hess_psi"][k], (plus["grad_psi"] - minus["grad_psi"]) / (2 * h), rtol=1e-5)
    without = _reml_core(compound(X, y, psi), derivatives=False)
    assert "grad_psi" not in without and np.isclose(without["deviance"], out["deviance"])


def test_satterthwaite_with_iid_errors_is_n_minus_p():
    """With V = s2 I at the REML optimum (s2 = RSS / (N - p)) Satterthwaite's df is exactly N - p."""
    X, y = data(n=10, s=2)
    Xf, yf = X.reshape(-1, 2), y.ravel()
    rss = float(np.sum((yf - Xf @ np.linalg.lstsq(Xf, yf, rcond=None)[0]) ** 2))
    s2 = rss / (yf.size - 2)
    n, s, _ = X.shape
    eye = np.broadcast_to(np.eye(s), (n, s, s))
    parts = _reml_core([(X, y, s2 * eye, [eye], {})])
    assert abs(parts["grad_psi"][0]) < 1e-8
    df, note = _satterthwaite_df(parts, np.eye(1), parts["hess_psi"], np.array([[0.0, 1.0], [1.0, 1.0]]))
    assert np.allclose(df, yf.size - 2) and note == ""
    df, note = _satterthwaite_df(parts, np.eye(1), np.zeros((1, 1)), np.array([[0.0, 1.0]]))
    assert np.isnan(df).all() and "singular" in note
