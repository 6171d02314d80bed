"""Aliasing in the meta-analyst's design: which knob settings the runs cannot tell apart.

The meta-analyst regresses on an intercept (the base config) and one indicator column per knob
setting. When those columns are linearly dependent (two knobs always changed together; one knob's
runs exactly the runs of two others), single effects are not identifiable: every split of the
credit fits the runs equally well, and a ridge turns that into huge standard errors and an
arbitrary split. The design's null space (the eigenvectors of X'X with eigenvalue zero: the SVD of
X, squared) says what is identified: a combination `c @ coef` is iff `c` is orthogonal to the
null space. Settings that take part in a null vector form groups (connected through the projector
onto the null space, which makes the groups independent of the basis); what the runs do identify
for a group is the joint effect of each combination of its settings that some run had (a design
row restricted to a group is orthogonal to the null space, unless the group holds the intercept:
then every run changed one of its settings, and an effect relative to the base config may not be
identified at all).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.sparse.csgraph import connected_components

TOL = 1e-8                 # null-space entries of a 0/1 design are far from this, or zero


class Joint(NamedTuple):
    """An identified combination of design columns: its estimate, standard error and runs."""

    columns: tuple[int, ...]      # design columns (0 = intercept, never here)
    effect: float
    stderr: float | None
    n: int                        # runs with exactly this combination within its group


class Aliased(NamedTuple):
    """The identified effects of a rank-deficient design and the columns left unidentified."""

    single: list[Joint]           # columns identified on their own
    joint: list[Joint]            # combinations of two or more columns
    unidentified: list[int]       # columns in no identified combination


CUT = 1e-10                # eigenvalues of X'X below CUT x the largest count as zero


def _spectrum(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lam, V, N): the Gram matrix X'X's nonzero eigenvalues (squared singular values of X) with
    their eigenvectors as columns, and an orthonormal basis of the null space as rows. The small
    Gram rather than the tall design: an SVD of the design (or numpy's `matrix_rank`) cost 2-10x
    the whole fit on a loaded 2-core machine. A singular Gram's zero eigenvalues come out near
    eps x the largest; a 0/1 design's smallest true one is far above the cut (one that were not
    would only be taken as aliased: its combinations are still identified and reported)."""
    lam, vecs = np.linalg.eigh(X.T @ X)
    kept = lam > lam[-1] * CUT
    return lam[kept], vecs[:, kept], vecs[:, ~kept].T


def full_rank(X: np.ndarray) -> bool:
    """Whether every column of the design is identifiable (the usual case)."""
    return X.shape[0] >= X.shape[1] and bool(_spectrum(X)[2].size == 0)


def _groups(N: np.ndarray) -> list[list[int]]:
    """Columns that take part in the null space, grouped through its projector."""
    P = N.T @ N
    linked = np.abs(P) > TOL
    count, label = connected_components(linked, directed=False)
    involved = np.diag(P) > TOL
    return [c for c in ([int(j) for j in np.flatnonzero((label == k) & involved)]
                        for k in range(count)) if c]


def _indicator(size: int, columns: tuple[int, ...]) -> np.ndarray:
    c = np.zeros(size)
    c[list(columns)] = 1.0
    return c


def analyse(X: np.ndarray, y: np.ndarray) -> Aliased:
    """Least squares on a rank-deficient design: the minimum-norm solution, and the standard
    errors of identified combinations from the residual variance over n - rank dof."""
    lam, V, N = _spectrum(X)
    coef = V @ ((V.T @ (X.T @ y)) / lam)         # (X'X)^+ X'y: the minimum-norm solution
    resid = y - X @ coef
    dof = y.size - lam.size                      # n - rank
    s2 = float(resid @ resid) / dof if dof > 0 else None

    def estimate(columns: tuple[int, ...], n: int) -> Joint:
        c = _indicator(X.shape[1], columns)
        w = V.T @ c                            # c' (X'X)^+ c = sum w^2 / lam
        se = None if s2 is None else float(np.sqrt(s2 * float(w @ (w / lam))))
        return Joint(columns, float(c @ coef), se, n)

    groups = _groups(N)
    grouped = {j for g in groups for j in g}
    single = [estimate((j,), int(X[:, j].sum())) for j in range(1, X.shape[1]) if j not in grouped]
    joint, covered = [], set()
    for group in groups:
        members = [j for j in group if j != 0]
        patterns, counts = np.unique(X[:, members] > 0.5, axis=0, return_counts=True)
        for pattern, n in zip(patterns, counts):
            columns = tuple(j for j, on in zip(members, pattern) if on)
            # identified relative to the base config: orthogonal to the null space
            if columns and np.abs(N @ _indicator(X.shape[1], columns)).max() < TOL:
                joint.append(estimate(columns, int(n)))
                covered.update(columns)
    unidentified = sorted(grouped - covered - {0})
    return Aliased(single, joint, unidentified)
