"""Collaborative models over a user × item interaction matrix: popularity, EASE, item-kNN, implicit ALS.

They share one tiny contract so evaluation and the live recommender can swap them freely:
``fit(data) -> self`` and ``score(user_rows) -> (u, n_items)`` where ``user_rows`` are rows of an
interaction matrix over the *same item list* the model was fitted on (a live user's history works too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from mmrec.errors import InvalidInputError


@dataclass
class InteractionData:
    """Users, items and a (n_users, n_items) float32 CSR matrix of interaction weights.

    Kept as ids + a sparse matrix (not a frame) because every model here is linear algebra on it.
    """

    users: list[str]
    items: list[str]
    matrix: sp.csr_matrix
    user_index: dict[str, int] = field(init=False)
    item_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.matrix = sp.csr_matrix(self.matrix, dtype=np.float32)
        if self.matrix.shape != (len(self.users), len(self.items)):
            raise InvalidInputError(
                "InteractionData",
                "matrix",
                f"shape {self.matrix.shape} != ({len(self.users)}, {len(self.items)})",
            )
        self.user_index = {u: i for i, u in enumerate(self.users)}
        self.item_index = {it: i for i, it in enumerate(self.items)}
        if len(self.user_index) != len(self.users):
            raise InvalidInputError("InteractionData", "users", "duplicate user ids")
        if len(self.item_index) != len(self.items):
            raise InvalidInputError("InteractionData", "items", "duplicate item ids")

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @classmethod
    def from_triples(
        cls,
        triples: Iterable[tuple[str, str, float]],
        users: Sequence[str] | None = None,
        items: Sequence[str] | None = None,
    ) -> InteractionData:
        """Build from (user, item, weight) rows; repeated pairs add up.

        Pass ``users``/``items`` to fix the id lists (e.g. so a test split shares the train's item
        columns); ids outside fixed lists are refused rather than silently dropped.
        """
        rows = list(triples)
        user_list = list(users) if users is not None else sorted({str(r[0]) for r in rows})
        item_list = list(items) if items is not None else sorted({str(r[1]) for r in rows})
        uidx = {u: i for i, u in enumerate(user_list)}
        iidx = {it: i for i, it in enumerate(item_list)}
        r = np.empty(len(rows), dtype=np.int64)
        c = np.empty(len(rows), dtype=np.int64)
        w = np.empty(len(rows), dtype=np.float32)
        for n, (u, it, wt) in enumerate(rows):
            try:
                r[n] = uidx[str(u)]
                c[n] = iidx[str(it)]
            except KeyError as exc:
                raise InvalidInputError(
                    "interactions", "user_id/item_id", f"unknown id {exc.args[0]!r}"
                ) from None
            w[n] = wt
        mat = sp.csr_matrix((w, (r, c)), shape=(len(user_list), len(item_list)), dtype=np.float32)
        mat.sum_duplicates()
        return cls(user_list, item_list, mat)

    @classmethod
    def from_frame(
        cls,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        weights: Sequence[float] | None = None,
        users: Sequence[str] | None = None,
        items: Sequence[str] | None = None,
    ) -> InteractionData:
        """Column-wise constructor (parallel arrays, as read from a CSV/table); weights default to 1."""
        if weights is None:
            weights = np.ones(len(user_ids), dtype=np.float32)
        if not (len(user_ids) == len(item_ids) == len(weights)):
            raise InvalidInputError(
                "interactions", "columns", "user, item and weight columns differ in length"
            )
        return cls.from_triples(zip(user_ids, item_ids, weights, strict=True), users=users, items=items)

    def binary(self) -> InteractionData:
        """The same interactions with every weight set to 1 (implicit feedback)."""
        m = self.matrix.copy()
        m.data[:] = 1.0
        return InteractionData(list(self.users), list(self.items), m)


def _dense(rows: sp.spmatrix | np.ndarray) -> np.ndarray:
    return rows.toarray().astype(np.float32) if sp.issparse(rows) else np.asarray(rows, dtype=np.float32)


class Popularity:
    """Scores every item by how many users interacted with it: the baseline every model must beat."""

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    def fit(self, data: InteractionData) -> Popularity:
        self.counts = np.asarray((data.matrix > 0).sum(axis=0), dtype=np.float32).ravel()
        return self

    def forget_rows(self, rows: sp.spmatrix | np.ndarray) -> None:
        """Take users' share out of the counts (one per item they interacted with)."""
        assert self.counts is not None, "fit() first"
        dense = rows.toarray() if sp.issparse(rows) else np.atleast_2d(np.asarray(rows))
        self.counts = np.maximum(self.counts - (dense > 0).sum(axis=0).astype(np.float32), 0.0)

    def score(self, user_rows: sp.csr_matrix) -> np.ndarray:
        assert self.counts is not None, "fit() first"
        return np.tile(self.counts, (user_rows.shape[0], 1))


class EASE:
    """Embarrassingly Shallow Autoencoder (Steck 2019): closed-form item-item weights B, diag(B)=0.

    B = I − P·diag(1/diag(P)) with P = G⁻¹ and G = XᵀX + λI. Two optional terms of G:

    - ``pop_l2`` = c adds c·diag(XᵀX): a ridge that grows with the item's own count, what dropout
      on the input amounts to in closed form (Steck 2020, EDLAE; c = p / (1 − p) for dropout p).
      Popular items then predict less from themselves alone.
    - ``side_weight`` = a with item content C (unit rows) adds a·CCᵀ: each content dimension acts
      as a pseudo-user holding the items that share it (side information as extra rows of X, as in
      collective SLIM), so items with similar text are linked even where few users saw both. ``a``
      counts in interactions (a cosine of 1 weighs like a users who had both items); it is absolute,
      not scaled by the data, so forgetting a user stays exact.

    The inverse is dense item × item, so this is meant for catalogues up to ~20k items (20k² float32
    = 1.6 GB); beyond that use ItemKNN or ALS.
    """

    def __init__(
        self, l2: float = 300.0, keep_inverse: bool = True, pop_l2: float = 0.0, side_weight: float = 0.0
    ) -> None:
        self.l2 = float(l2)
        self.pop_l2 = float(pop_l2)
        self.side_weight = float(side_weight)
        self.keep_inverse = keep_inverse
        self.B: np.ndarray | None = None
        # P = G⁻¹ in float64: kept so one user's row can be removed exactly (see forget_rows).
        self.P: np.ndarray | None = None

    def fit(self, data: InteractionData, item_content: np.ndarray | None = None) -> EASE:
        """``item_content`` (rows follow ``data.items``) is used when ``side_weight`` > 0."""
        x = data.matrix
        gram = (x.T @ x).toarray().astype(np.float64)
        counts = np.diag(gram).copy()
        if self.side_weight > 0 and item_content is not None:
            c = np.asarray(item_content, dtype=np.float64)
            c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
            gram += self.side_weight * (c @ c.T)
        gram[np.diag_indices_from(gram)] += self.l2 + self.pop_l2 * counts
        p = np.linalg.inv(gram)
        self.P = p if self.keep_inverse else None
        self.B = self._weights(p)
        return self

    @staticmethod
    def _weights(p: np.ndarray) -> np.ndarray:
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices_from(b)] = 0.0
        return b.astype(np.float32)

    def forget_rows(self, rows: sp.spmatrix | np.ndarray) -> None:
        """Remove users' rows from the fit exactly, as if they had never been in X.

        Each row x is a rank-1 term of XᵀX, so the inverse follows by Sherman–Morrison:
        (G − xxᵀ)⁻¹ = P + (Px)(Px)ᵀ / (1 − xᵀPx). With ``pop_l2`` = c the row also leaves
        c·diag(x²), so G loses UUᵀ with U = [x, √c·x_j·e_j for j in x's items] and Woodbury gives
        (G − UUᵀ)⁻¹ = P + PU(I − UᵀPU)⁻¹UᵀP. O(n_items²·m) per row of m items instead of a refit's
        O(n_items³); needs P (float64), which ``fit`` keeps unless ``keep_inverse=False``. The
        content term does not depend on users and stays.
        """
        if self.P is None:
            raise InvalidInputError("EASE.forget_rows", "P", "the inverse Gram matrix was not kept; refit")
        dense = rows.toarray() if sp.issparse(rows) else np.atleast_2d(np.asarray(rows))
        p = self.P
        for x in dense.astype(np.float64):
            nz = np.flatnonzero(x)
            if not len(nz):
                continue
            if self.pop_l2 <= 0:
                px = p[:, nz] @ x[nz]
                denom = 1.0 - float(x[nz] @ px[nz])
                p += np.outer(px, px) / denom  # in place: P stays symmetric positive definite (λ > 0)
                continue
            u = np.hstack([x[nz, None], np.diag(np.sqrt(self.pop_l2) * x[nz])])  # rows: the items nz
            pu = p[:, nz] @ u
            inner = np.eye(u.shape[1]) - u.T @ pu[nz]
            p += pu @ np.linalg.solve(inner, pu.T)
        self.B = self._weights(p)

    def score(self, user_rows: sp.csr_matrix) -> np.ndarray:
        assert self.B is not None, "fit() first"
        return np.asarray(user_rows @ self.B, dtype=np.float32)


class ItemKNN:
    """Cosine similarity of item co-occurrence columns, pruned to each item's ``k`` nearest neighbours."""

    def __init__(self, k: int = 100) -> None:
        self.k = k
        self.S: np.ndarray | None = None

    def fit(self, data: InteractionData) -> ItemKNN:
        x = data.matrix
        gram = (x.T @ x).toarray().astype(np.float32)
        norms = np.sqrt(np.maximum(np.diag(gram), 1e-12))
        sim = gram / norms[:, None] / norms[None, :]
        np.fill_diagonal(sim, 0.0)
        if self.k < sim.shape[0]:
            cut = np.partition(sim, -self.k, axis=0)[-self.k]
            sim[sim < cut[None, :]] = 0.0
        self.S = sim
        return self

    def score(self, user_rows: sp.csr_matrix) -> np.ndarray:
        assert self.S is not None, "fit() first"
        return np.asarray(user_rows @ self.S, dtype=np.float32)


class ImplicitALS:
    """Implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008) by alternating least squares.

    Plain numpy (one small solve per user and item per sweep), meant for small catalogues; an alternative
    collaborative space for content mappings (its item factors did about as well as EASE columns as a
    ridge target on cold MovieLens items). Confidence is ``1 + alpha * weight``.
    """

    def __init__(
        self, factors: int = 64, l2: float = 0.1, alpha: float = 10.0, iterations: int = 10, seed: int = 0
    ) -> None:
        self.factors, self.l2, self.alpha, self.iterations, self.seed = factors, l2, alpha, iterations, seed
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None

    def _solve(self, c: sp.csr_matrix, fixed: np.ndarray) -> np.ndarray:
        ftf = fixed.T @ fixed
        reg = self.l2 * np.eye(self.factors)
        out = np.zeros((c.shape[0], self.factors))
        for i in range(c.shape[0]):
            lo, hi = c.indptr[i], c.indptr[i + 1]
            idx, conf = c.indices[lo:hi], c.data[lo:hi]
            if len(idx) == 0:
                continue
            y = fixed[idx]
            a = ftf + (y.T * (conf - 1.0)) @ y + reg
            out[i] = np.linalg.solve(a, (y.T * conf).sum(axis=1))
        return out

    def fit(self, data: InteractionData) -> ImplicitALS:
        rng = np.random.default_rng(self.seed)
        c = data.matrix.astype(np.float64).tocsr()
        c.data = 1.0 + self.alpha * c.data
        ct = c.T.tocsr()
        items = rng.normal(0, 0.01, (data.n_items, self.factors))
        users = np.zeros((data.n_users, self.factors))
        for _ in range(self.iterations):
            users = self._solve(c, items)
            items = self._solve(ct, users)
        self.user_factors, self.item_factors = users.astype(np.float32), items.astype(np.float32)
        return self

    def user_vectors(self, user_rows: sp.csr_matrix) -> np.ndarray:
        """Fold in users (new or known) from their interaction rows with the fitted item factors."""
        assert self.item_factors is not None, "fit() first"
        c = sp.csr_matrix(user_rows, dtype=np.float64)
        c.data = 1.0 + self.alpha * c.data
        return self._solve(c, self.item_factors.astype(np.float64)).astype(np.float32)

    def score(self, user_rows: sp.csr_matrix) -> np.ndarray:
        assert self.item_factors is not None, "fit() first"
        return self.user_vectors(user_rows) @ self.item_factors.T
