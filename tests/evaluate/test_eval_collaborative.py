"""Collaborative models on a handmade matrix where the right answer is obvious."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mmrec.errors import InvalidInputError
from mmrec.recommend.collaborative import EASE, ImplicitALS, InteractionData, ItemKNN, Popularity

# items a and b are always consumed together; c and d together; e by everyone (popular).
TRIPLES = [
    ("u1", "a", 1), ("u1", "b", 1), ("u1", "e", 1),
    ("u2", "a", 1), ("u2", "b", 1), ("u2", "e", 1),
    ("u3", "a", 1), ("u3", "b", 1),
    ("u4", "c", 1), ("u4", "d", 1), ("u4", "e", 1),
    ("u5", "c", 1), ("u5", "d", 1), ("u5", "e", 1),
    ("u6", "c", 1), ("u6", "d", 1),
]  # fmt: skip


@pytest.fixture(scope="module")
def data() -> InteractionData:
    return InteractionData.from_triples(TRIPLES)


def _history(data: InteractionData, *items: str) -> sp.csr_matrix:
    row = np.zeros((1, data.n_items), dtype=np.float32)
    for it in items:
        row[0, data.item_index[it]] = 1.0
    return sp.csr_matrix(row)


@pytest.mark.parametrize("model", [EASE(l2=1.0), ItemKNN(k=3), ImplicitALS(factors=3, l2=0.1, iterations=15)])
def test_the_co_occurring_item_ranks_first(data: InteractionData, model) -> None:
    model.fit(data)
    for seen, partner in (("a", "b"), ("c", "d")):
        scores = model.score(_history(data, seen))[0]
        scores[data.item_index[seen]] = -np.inf
        assert data.items[int(np.argmax(scores))] == partner


def test_popularity_counts_users(data: InteractionData) -> None:
    scores = Popularity().fit(data).score(_history(data, "a"))[0]
    assert scores[data.item_index["e"]] == 4 and scores[data.item_index["a"]] == 3


def test_interaction_data_validates_ids_and_sums_duplicates() -> None:
    d = InteractionData.from_frame(["u", "u"], ["x", "x"], [2.0, 3.0])
    assert d.matrix[0, 0] == pytest.approx(5.0)
    assert d.binary().matrix[0, 0] == 1.0
    with pytest.raises(InvalidInputError, match="unknown id 'y'"):
        InteractionData.from_frame(["u"], ["y"], items=["x"])
    with pytest.raises(InvalidInputError, match="differ in length"):
        InteractionData.from_frame(["u"], ["x", "x"])


def test_ease_terms_reach_cold_items_and_forget_exactly(movielens, movielens_content) -> None:  # noqa: ANN001
    """The content term gives an item nobody saw a column; both terms keep a forget exact (Woodbury)."""
    keep = np.isin(movielens.users, sorted(set(movielens.users.tolist()), key=int)[:300])
    data = InteractionData.from_frame(
        movielens.users[keep], movielens.items[keep], items=movielens.item_ids
    ).binary()
    cold = np.flatnonzero(np.asarray(data.matrix.sum(axis=0)).ravel() == 0)
    assert len(cold) > 50  # 300 users leave many MovieLens films unseen
    plain = EASE(300.0).fit(data)
    assert not plain.B[:, cold].any()  # EASE alone cannot score an item without interactions
    ease = EASE(300.0, pop_l2=1.0, side_weight=100.0).fit(data, movielens_content)
    assert np.abs(ease.B[:, cold]).sum(axis=0).min() > 0
    for user in (data.users[5], data.users[123]):
        ease.forget_rows(data.matrix[data.user_index[user]])
        rows = [i for i, u in enumerate(data.users) if u != user]
        data = InteractionData([data.users[i] for i in rows], list(data.items), data.matrix[rows])
    refit = EASE(300.0, pop_l2=1.0, side_weight=100.0).fit(data, movielens_content)
    assert np.abs(ease.P - refit.P).max() < 1e-10 * np.abs(refit.P).max()
    np.testing.assert_allclose(ease.B, refit.B, atol=1e-6)
