"""HybridScorer on real MovieLens interactions and real item text vectors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mmrec.errors import InvalidInputError
from mmrec.evaluate.datasets import Dataset
from mmrec.recommend.collaborative import InteractionData
from mmrec.recommend.hybrid import COMPONENTS, HybridScorer, top_k


@pytest.fixture(scope="module")
def train(movielens: Dataset) -> InteractionData:
    return InteractionData.from_frame(movielens.users, movielens.items, items=movielens.item_ids).binary()


def test_scores_are_standardised_components_blended_by_weights(train, movielens_content) -> None:
    weights = {"collaborative": 1.0, "content": 0.3, "popularity": 0.2}
    model = HybridScorer(weights=weights, tune=False).fit(train, movielens_content)
    parts = model.score(train.matrix[:5])
    assert set(parts) == {*COMPONENTS, "total"}
    for name in COMPONENTS:
        assert parts[name].shape == (5, train.n_items)
        assert np.allclose(parts[name].mean(axis=1), 0.0, atol=1e-4)
        assert np.allclose(parts[name].std(axis=1), 1.0, atol=1e-3)
    expected = sum(weights[c] * parts[c] for c in COMPONENTS)
    assert np.allclose(parts["total"], expected, atol=1e-5)


def test_a_star_wars_fan_gets_the_sequels(train, movielens, movielens_content) -> None:
    model = HybridScorer(tune=False).fit(train, movielens_content)
    star_wars = movielens.item_ids.index("50")  # Star Wars (1977)
    row = sp.csr_matrix(([1.0], ([0], [star_wars])), shape=(1, train.n_items))
    top = top_k(model.score(row)["total"], 10, exclude=row)[0]
    titles = [movielens.titles[i] for i in top]
    assert "Return of the Jedi (1983)" in titles and "Empire Strikes Back, The (1980)" in titles


def test_cold_items_are_ordered_by_content_not_left_as_ties(movielens, movielens_content) -> None:
    hidden = [
        "172",
        "181",
        "1",
        "2",
        "3",
    ]  # Empire Strikes Back, Return of the Jedi, Toy Story, GoldenEye, ...
    keep = ~np.isin(movielens.items, hidden)
    data = InteractionData.from_frame(movielens.users[keep], movielens.items[keep], items=movielens.item_ids)
    model = HybridScorer(tune=False, weights={"collaborative": 1.0, "content": 0.01, "popularity": 0.1})
    model.fit(data, movielens_content)
    cold = np.flatnonzero(np.asarray(data.matrix.sum(axis=0)).ravel() == 0)
    assert len(cold) == len(hidden)
    scores = model.score(data.matrix[:50])["total"][:, cold]
    assert (scores.std(axis=1) > 0).all()


def test_tuning_uses_validation_and_picks_weights_from_the_grid(train, movielens_content) -> None:
    model = HybridScorer(l2_grid=(200.0, 800.0), weight_grid=(0.0, 0.2), seed=1).fit(train, movielens_content)
    assert model.l2 in (200.0, 800.0)
    assert model.weights["popularity"] in (0.0, 0.2)
    assert model.weights["content"] in (0.01, 0.2)  # floored so cold items stay ordered
    assert 0.2 < model.tuning["validation_ndcg"] < 0.8


def test_live_user_profiles_and_bad_shapes(train, movielens_content) -> None:
    model = HybridScorer(tune=False).fit(train, movielens_content)
    profile = movielens_content[[0, 1]].mean(axis=0, keepdims=True)
    with_profile = model.score(train.matrix[:1], content_profiles=profile)["content"]
    without = model.score(train.matrix[:1])["content"]
    assert not np.allclose(with_profile, without)
    with pytest.raises(InvalidInputError, match="columns but the model knows"):
        model.score(sp.csr_matrix((1, 10)))
    with pytest.raises(InvalidInputError, match="item_content"):
        HybridScorer(tune=False).fit(train, movielens_content[:10])
