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
