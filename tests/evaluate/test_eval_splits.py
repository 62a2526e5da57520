"""Splits on the real MovieLens-100K table: deterministic per seed, disjoint, ratios as promised."""

from __future__ import annotations

import numpy as np
import pytest

from mmrec.evaluate.datasets import Dataset, load_dataset
from mmrec.evaluate.splits import cold_items_split, leave_last_out, stratified_split


@pytest.fixture(scope="module")
def ml(ml100k_dir) -> Dataset:
    return load_dataset("movielens-100k")


@pytest.mark.parametrize("by", ["users", "items"])
def test_stratified_split_is_deterministic_disjoint_and_keeps_ratio_per_group(ml: Dataset, by: str) -> None:
    groups = getattr(ml, by)
    train, test = stratified_split(groups, 0.75, seed=42)
    again, _ = stratified_split(groups, 0.75, seed=42)
    other, _ = stratified_split(groups, 0.75, seed=43)
    assert np.array_equal(train, again)
    assert not np.array_equal(train, other)
    assert len(np.intersect1d(train, test)) == 0
    assert len(train) + len(test) == len(groups) == 100_000
    names, totals = np.unique(groups, return_counts=True)
    in_train = dict(zip(*np.unique(groups[train], return_counts=True), strict=True))
    for name, n in zip(names, totals, strict=True):
        assert in_train.get(name, 0) == round(0.75 * int(n))


def test_leave_last_out_holds_out_each_users_latest(ml: Dataset) -> None:
    train, test = leave_last_out(ml.users, ml.timestamps)
    assert len(test) == len(np.unique(ml.users)) == 943
    assert len(np.intersect1d(train, test)) == 0
    latest = {}
    for u, t in zip(ml.users[train], ml.timestamps[train], strict=True):
        latest[u] = max(latest.get(u, -1.0), t)
    for row in test[:200]:
        assert ml.timestamps[row] >= latest[ml.users[row]]


def test_cold_items_never_reach_training(ml: Dataset) -> None:
    train, test, cold = cold_items_split(ml.items, 0.2, seed=42)
    assert len(cold) == round(0.2 * 1682)
    assert not np.isin(ml.items[train], cold).any()
    assert np.isin(ml.items[test], cold).all()
    assert np.array_equal(cold, cold_items_split(ml.items, 0.2, seed=42)[2])
