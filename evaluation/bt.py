"""Bradley–Terry fits on collapsed counts: the plain model (ties = half a win) and Davidson's tie model.

Parameters are ``[theta_0 .. theta_{M-1}, gamma?, eta?]``: natural-log strengths, the length
coefficient (length control only) and ``eta = log(nu)``, Davidson's tie parameter. For a battle
of a against b with length covariate z, ``delta = theta_a - theta_b + gamma * z`` and

* plain BT:  P(a wins) = sigmoid(delta); a tie counts as half a win and half a loss;
* Davidson:  P(a) : P(b) : P(tie) = exp(delta/2) : exp(-delta/2) : nu.

The fit is Newton's method with step halving on the negative log-likelihood plus a tiny ridge
(``RIDGE * |theta|^2 / 2``), which pins the otherwise free overall level at mean zero and keeps a
model with a perfect record finite (such models are reported as unreliable by the caller).
Everything works on the distinct rows of a :class:`~evaluation.battles.CountTable`, so the cost
does not grow with the number of votes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluation.battles import OUTCOME_A, OUTCOME_B, OUTCOME_TIE, CountTable

RIDGE = 1e-6
MAX_ITER = 200


@dataclass
class Fit:
    """One fit: parameters, and where gamma / eta sit in them (None when absent)."""

    params: np.ndarray
    n_models: int
    gamma_index: int | None
    eta_index: int | None
    iterations: int

    @property
    def theta(self) -> np.ndarray:
        return self.params[: self.n_models]

    @property
    def gamma(self) -> float | None:
        return None if self.gamma_index is None else float(self.params[self.gamma_index])

    @property
    def nu(self) -> float | None:
        return None if self.eta_index is None else float(np.exp(self.params[self.eta_index]))


def _layout(n_models: int, length_control: bool, davidson: bool) -> tuple[int, int | None, int | None]:
    size = n_models
    gamma_index = eta_index = None
    if length_control:
        gamma_index, size = size, size + 1
    if davidson:
        eta_index, size = size, size + 1
    return size, gamma_index, eta_index


def _delta(table: CountTable, params: np.ndarray, gamma_index: int | None) -> np.ndarray:
    delta = params[table.a] - params[table.b]
    if gamma_index is not None:
        delta = delta + params[gamma_index] * table.covariate
    return delta


def _probabilities(table: CountTable, params: np.ndarray, gamma_index, eta_index) -> np.ndarray:
    """Per row, the probabilities of (a wins, b wins, tie); for plain BT the tie column is unused."""
    delta = _delta(table, params, gamma_index)
    if eta_index is None:
        p = 0.5 * (1.0 + np.tanh(0.5 * delta))  # sigmoid, stable
        return np.stack([p, 1.0 - p, np.zeros_like(p)], axis=1)
    logits = np.stack([0.5 * delta, -0.5 * delta, np.full_like(delta, params[eta_index])], axis=1)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def _loglik(table: CountTable, params, gamma_index, eta_index) -> float:
    counts = table.counts
    if eta_index is None:
        delta = _delta(table, params, gamma_index)
        won = counts[:, OUTCOME_A] + 0.5 * counts[:, OUTCOME_TIE]
        lost = counts[:, OUTCOME_B] + 0.5 * counts[:, OUTCOME_TIE]
        return float(-np.sum(won * np.logaddexp(0.0, -delta) + lost * np.logaddexp(0.0, delta)))
    probs = _probabilities(table, params, gamma_index, eta_index)
    return float(np.sum(counts * np.log(np.maximum(probs, 1e-300))))


def _scores(probs: np.ndarray, davidson: bool) -> tuple[np.ndarray, np.ndarray]:
    """Score of one battle of each outcome, per row: ``(g_delta, g_eta)``, each of shape (rows, 3)."""
    p1, p2, p3 = probs[:, 0:1], probs[:, 1:2], probs[:, 2:3]
    y = np.eye(3)[None, :, :]  # y[..., o, k]: outcome o's indicator of category k
    if not davidson:
        credit = np.array([[1.0, 0.0, 0.5]])
        return credit - p1, np.zeros((len(probs), 3))
    g_delta = 0.5 * ((y[..., 0] - p1) - (y[..., 1] - p2))
    return g_delta, y[..., 2] - p3


def _information(probs: np.ndarray, n: np.ndarray, davidson: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hessian components of the negative log-likelihood per row (see :func:`_assemble`)."""
    p1, p2, p3 = probs[:, 0], probs[:, 1], probs[:, 2]
    if not davidson:
        return n * p1 * p2, np.zeros_like(n), np.zeros_like(n)
    return 0.25 * n * ((p1 + p2) - (p1 - p2) ** 2), 0.5 * n * p3 * (p2 - p1), n * p3 * (1.0 - p3)


def _assemble(table: CountTable, size: int, gamma_index, eta_index, w_dd, w_de, w_ee) -> np.ndarray:
    """Sum over rows of ``w_dd d d^T + w_de (d e^T + e d^T) + w_ee e e^T`` as a dense matrix,
    where ``d = d(delta)/d(params)`` and ``e`` is the unit vector of eta."""
    a, b = table.a, table.b
    rows = [a, b, a, b]
    cols = [a, b, b, a]
    vals = [w_dd, w_dd, -w_dd, -w_dd]
    if gamma_index is not None:
        z = table.covariate
        g = np.full_like(a, gamma_index)
        rows += [a, g, b, g, g]
        cols += [g, a, g, b, g]
        vals += [w_dd * z, w_dd * z, -w_dd * z, -w_dd * z, w_dd * z * z]
    if eta_index is not None:
        e = np.full_like(a, eta_index)
        rows += [a, e, b, e, e]
        cols += [e, a, e, b, e]
        vals += [w_de, w_de, -w_de, -w_de, w_ee]
        if gamma_index is not None:
            z = table.covariate
            g = np.full_like(a, gamma_index)
            rows += [g, e]
            cols += [e, g]
            vals += [w_de * z, w_de * z]
    flat = np.concatenate(rows) * size + np.concatenate(cols)
    return np.bincount(flat, weights=np.concatenate(vals), minlength=size * size).reshape(size, size)


def _gradient(table: CountTable, size: int, gamma_index, eta_index, g_delta, g_eta) -> np.ndarray:
    """Gradient of the log-likelihood from per-row totals of the delta and eta scores."""
    grad = np.bincount(table.a, weights=g_delta, minlength=size) - np.bincount(table.b, weights=g_delta, minlength=size)
    if gamma_index is not None:
        grad[gamma_index] += np.sum(g_delta * table.covariate)
    if eta_index is not None:
        grad[eta_index] += np.sum(g_eta)
    return grad


def fit(
    table: CountTable,
    *,
    length_control: bool = False,
    davidson: bool = False,
    start: np.ndarray | None = None,
    tol: float = 1e-8,
) -> Fit:
    """Maximum-likelihood fit on the counts of ``table`` (see the module docstring for the models)."""
    n_models = len(table.models)
    size, gamma_index, eta_index = _layout(n_models, length_control, davidson)
    params = np.zeros(size) if start is None else np.array(start, dtype=float)
    ridge = np.zeros(size)
    ridge[:n_models] = RIDGE
    counts = table.counts.astype(float)
    n = counts.sum(axis=1)

    def objective(x):
        return -_loglik(table, x, gamma_index, eta_index) + 0.5 * float(np.sum(ridge * x * x))

    current = objective(params)
    iterations = 0
    for iterations in range(1, MAX_ITER + 1):
        probs = _probabilities(table, params, gamma_index, eta_index)
        g_delta, g_eta = _scores(probs, davidson)
        grad = _gradient(
            table, size, gamma_index, eta_index, np.sum(counts * g_delta, axis=1), np.sum(counts * g_eta, axis=1)
        ) - ridge * params
        hess = _assemble(table, size, gamma_index, eta_index, *_information(probs, n, davidson))
        hess[np.diag_indices(size)] += ridge + 1e-12
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while True:
            candidate = params + scale * step
            value = objective(candidate)
            if value <= current + 1e-12 * max(1.0, abs(current)) or scale < 1e-8:
                break
            scale *= 0.5
        params, current = candidate, value
        if np.max(np.abs(scale * step)) < tol:
            break
    return Fit(params=params, n_models=n_models, gamma_index=gamma_index, eta_index=eta_index, iterations=iterations)


def sandwich_covariance(table: CountTable, result: Fit) -> np.ndarray:
    """Robust (sandwich) covariance ``H^+ B H^+`` of the parameters, with theta summing to zero.

    ``H`` is the observed information and ``B`` the sum over battles of score outer products;
    the pseudo-inverse removes the free overall level of theta.
    """
    size = len(result.params)
    davidson = result.eta_index is not None
    counts = table.counts.astype(float)
    probs = _probabilities(table, result.params, result.gamma_index, result.eta_index)
    hess = _assemble(table, size, result.gamma_index, result.eta_index, *_information(probs, counts.sum(axis=1), davidson))
    g_delta, g_eta = _scores(probs, davidson)
    meat = _assemble(
        table, size, result.gamma_index, result.eta_index,
        np.sum(counts * g_delta**2, axis=1), np.sum(counts * g_delta * g_eta, axis=1), np.sum(counts * g_eta**2, axis=1),
    )
    bread = np.linalg.pinv(hess, rcond=1e-10, hermitian=True)
    return bread @ meat @ bread


def win_probability(delta, nu: float | None = None):
    """P(a beats b) counting a tie as half, for strength difference ``delta`` (natural log scale)."""
    delta = np.asarray(delta, dtype=float)
    if nu is None:
        return 0.5 * (1.0 + np.tanh(0.5 * delta))
    win, lose = np.exp(0.5 * delta), np.exp(-0.5 * delta)
    return (win + 0.5 * nu) / (win + lose + nu)
