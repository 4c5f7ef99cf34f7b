"""Tests for lungtrial.stats._mixed_random: random effects per subject in lme4's parametrisation, their REML fit
(refined and bounded), lmerTest's Satterthwaite and nlme's between-within df."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lungtrial.stats._mixed_random import (
    _between_within,
    _Blocks,
    _fit_bounded,
    _lower_cholesky,
    _phi_from,
    _phi_to_psi,
    _refine,
    _satterthwaite,
)


def one_way(n_sub=8, m=4, between=2.0, seed=0):
    """Balanced one-way data: intercept only, a random intercept per subject."""
    rng = np.random.default_rng(seed)
    y = (rng.normal(scale=np.sqrt(between), size=(n_sub, 1)) + rng.normal(size=(n_sub, m))).ravel() + 10.0
    groups = np.repeat(np.arange(n_sub), m)
    ones = np.ones((y.size, 1))
    per_subject = y.reshape(n_sub, m)
    msw = float(((per_subject - per_subject.mean(axis=1, keepdims=True)) ** 2).sum()) / (n_sub * (m - 1))
    msb = m * float(per_subject.mean(axis=1).var(ddof=1))
    return _Blocks(ones, ones, y, groups), msw, msb, m


def test_lower_cholesky():
    A = np.array([[4.0, 2.0], [2.0, 5.0]])
    assert np.allclose(_lower_cholesky(A), np.linalg.cholesky(A))
    singular = np.array([[0.0, 0.0], [0.0, 3.0]])
    L = _lower_cholesky(singular)
    assert np.allclose(L @ L.T, singular) and np.allclose(L, np.tril(L))


def test_phi_round_trip_and_jacobian():
    G, s2 = np.array([[2.0, 0.3], [0.3, 0.5]]), 1.5
    phi = _phi_from(G, s2)
    G2, s22, J, H2 = _phi_to_psi(phi, 2)
    assert np.allclose(G2, G) and np.isclose(s22, s2)

    def psi(p):
        g, s, _, _ = _phi_to_psi(p, 2)
        return np.array([g[0, 0], g[1, 0], g[1, 1], s])

    h = 1e-6
    for t in range(phi.size):
        e = np.zeros(phi.size)
        e[t] = h
        assert np.allclose(J[:, t], (psi(phi + e) - psi(phi - e)) / (2 * h), atol=1e-6)
        Jp, Jm = _phi_to_psi(phi + e, 2)[2], _phi_to_psi(phi - e, 2)[2]
        assert np.allclose(H2[:, :, t], (Jp - Jm) / (2 * h), atol=1e-5)


def test_balanced_one_way_reml_is_the_anova_estimate():
    """Balanced one-way data: REML's variances are ANOVA's (MSW; (MSB - MSW) / m), whichever fit reaches them."""
    blocks, msw, msb, m = one_way()
    assert msb > msw
    G, s2 = _fit_bounded(blocks, var_y=3.0, day_range=1.0)
    assert np.isclose(s2, msw, rtol=1e-5) and np.isclose(G[0, 0], (msb - msw) / m, rtol=1e-4)
    G, s2, steps = _refine(blocks, np.array([[1.1 * G[0, 0]]]), 0.9 * s2)
    assert steps > 0 and np.isclose(s2, msw, rtol=1e-8) and np.isclose(G[0, 0], (msb - msw) / m, rtol=1e-8)
    df, note = _satterthwaite(blocks, G, s2, np.array([[1.0]]))
    assert np.isclose(df[0], 8 - 1, rtol=1e-6) and note == ""  # the mean of balanced one-way data: n_sub - 1


def test_no_variance_between_subjects_is_a_singular_fit():
    blocks, msw, msb, _ = one_way(between=0.0, seed=2)
    assert msb < msw
    G, s2 = _fit_bounded(blocks, var_y=1.0, day_range=1.0)
    assert G[0, 0] < 1e-8 and s2 > 0


def test_between_within_df():
    n_sub, m = 6, 3
    groups = np.repeat(np.arange(n_sub), m)
    X = pd.DataFrame({
        "Intercept": 1.0,
        "treated": np.repeat([0.0, 1.0], n_sub * m // 2),
        "study_day": np.tile([0.0, 7.0, 14.0], n_sub),
    })
    df = _between_within(X, groups, np.eye(3))
    # nlme: the arm at the subject level (n_sub - 1 - 1), the day within (N - n_sub - 1), the intercept the larger
    assert df.tolist() == [11.0, 4.0, 11.0]
    assert _between_within(X, groups, np.array([[0.0, 1.0, 1.0]])).tolist() == [4.0]
