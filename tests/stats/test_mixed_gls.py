"""Tests for lungtrial.stats._mixed_gls: a residual covariance across visits, its derivatives and REML fit."""

from __future__ import annotations

import numpy as np
import pytest

from lungtrial.stats._mixed_gls import _describe_sigma, _fit_gls, _Patterns, _sigma

STRUCTURES = {"unstructured": [0.3, 0.5, -0.2, 0.1, 0.7, 0.0], "compound-symmetry": [0.4, -0.3], "ar1": [0.2, 0.6]}


@pytest.mark.parametrize("structure", STRUCTURES)
def test_sigma_is_positive_definite_with_exact_derivatives(structure):
    theta, K, h = np.array(STRUCTURES[structure]), 3, 1e-6
    S, dS, d2S = _sigma(structure, theta, K)
    assert np.allclose(S, S.T) and np.linalg.eigvalsh(S).min() > 0
    for t in range(theta.size):
        e = np.zeros(theta.size)
        e[t] = h
        (Sp, dSp, _), (Sm, dSm, _) = _sigma(structure, theta + e, K), _sigma(structure, theta - e, K)
        assert np.allclose(dS[t], (Sp - Sm) / (2 * h), atol=1e-7)
        for u in range(theta.size):  # the second derivatives not listed are zero
            fd = (dSp[u] - dSm[u]) / (2 * h)
            given = d2S.get((min(t, u), max(t, u)), np.zeros((K, K)))
            assert np.allclose(given, fd, atol=1e-6), (t, u)


def test_structures_of_the_correlation():
    S, _, _ = _sigma("ar1", np.array([np.log(2.0), np.arctanh(0.5)]), 4)
    assert np.allclose(S[0], 2.0 * 0.5 ** np.arange(4))
    S, _, _ = _sigma("compound-symmetry", np.array([0.0, 0.0]), 3)  # logit 0: halfway between -1/2 and 1
    assert np.allclose(np.diag(S), 1.0) and np.allclose(S[np.triu_indices(3, 1)], 0.25)
    with pytest.raises(ValueError, match="covariance='toeplitz'"):
        _sigma("toeplitz", np.zeros(2), 3)


def test_unstructured_reml_is_the_sample_covariance():
    """A mean per visit and complete data: the REML estimate of an unstructured Sigma is the sample covariance."""
    rng = np.random.default_rng(1)
    n, K = 40, 3
    A = np.array([[1.0, 0, 0], [0.6, 0.8, 0], [0.3, 0.4, 1.2]])
    Y = rng.normal(size=(n, K)) @ A.T + np.array([5.0, 4.0, 3.0])
    k = np.tile(np.arange(K), n)
    X = np.eye(K)[k]
    groups = np.repeat(np.arange(n), K)
    patterns = _Patterns(X, Y.ravel(), groups, k)
    visit_var = Y.var(axis=0, ddof=1)
    theta, final = _fit_gls(patterns, "unstructured", K, visit_var)
    assert np.allclose(final["Sigma"], np.cov(Y.T), rtol=1e-5)
    assert np.allclose(final["beta"], Y.mean(axis=0))


def test_patterns_group_subjects_by_the_visits_they_have():
    X = np.ones((5, 1))
    y = np.arange(5.0)
    groups = np.array([2, 1, 1, 2, 3])
    k = np.array([1, 1, 0, 0, 2])
    sets = _Patterns(X, y, groups, k).sets
    assert [tuple(s[2]) for s in sets] == [(0, 1), (2,)]
    assert sets[0][1].tolist() == [[2.0, 1.0], [3.0, 0.0]]  # subjects 1 and 2, visits in order


def test_describe_sigma():
    S = np.array([[4.0, 2.0], [2.0, 9.0]])
    words = "variances day0 4, day7 9; correlations day0-day7 0.333"
    assert _describe_sigma("unstructured", S, ["day0", "day7"]) == words
    cs = np.array([[2.0, 1.0], [1.0, 2.0]])
    assert _describe_sigma("compound-symmetry", cs, ["a", "b"]) == "variance 2, correlation 0.5"
    assert _describe_sigma("ar1", cs, ["a", "b"]) == "variance 2, correlation of consecutive visits 0.5"
    assert _describe_sigma("ar1", np.array([[3.0]]), ["a"]) == "variance 3"
