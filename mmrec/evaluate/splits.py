"""Train/test splits as row-index arrays, deterministic per seed.

Each function returns ``(train_rows, test_rows)`` (sorted int64 indices into the interaction table)
so the caller keeps one table and never copies ratings around.
"""

from __future__ import annotations

import numpy as np


def stratified_split(
    groups: np.ndarray, ratio: float = 0.75, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Per group (user or item), shuffle its rows and send the first ``round(ratio * n)`` to train.

    Mirrors Recommenders' ``python_stratified_split``: the group is ``col_user`` for
    ``filter_by="user"`` and ``col_item`` for ``filter_by="item"``; Python's ``round`` (half to even)
    decides the cut, as it does there.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    order = np.argsort(groups, kind="stable")
    _, starts, counts = np.unique(groups[order], return_index=True, return_counts=True)
    train, test = [], []
    for start, n in zip(starts, counts, strict=True):
        rows = rng.permutation(order[start : start + n])
        cut = round(ratio * int(n))
        train.append(rows[:cut])
        test.append(rows[cut:])
    return _sorted(train), _sorted(test)


def leave_last_out(users: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user's latest interaction (ties: the later row) goes to test; users with one row stay in train."""
    users = np.asarray(users)
    order = np.lexsort((np.arange(len(users)), np.asarray(timestamps, dtype=np.float64), users))
    sorted_users = users[order]
    is_last = np.ones(len(order), dtype=bool)
    is_last[:-1] = sorted_users[:-1] != sorted_users[1:]
    is_first = np.ones(len(order), dtype=bool)
    is_first[1:] = sorted_users[1:] != sorted_users[:-1]
    test_mask = is_last & ~is_first
    return np.sort(order[~test_mask]), np.sort(order[test_mask])


def cold_items_split(
    items: np.ndarray, fraction: float = 0.2, seed: int = 42
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hide ``fraction`` of the distinct items from training entirely.

    Returns ``(train_rows, test_rows, cold_item_ids)``: every interaction with a cold item is a test row.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    items = np.asarray(items)
    distinct = np.unique(items)
    rng = np.random.default_rng(seed)
    n_cold = max(1, round(fraction * len(distinct)))
    cold = np.sort(rng.choice(distinct, size=n_cold, replace=False))
    mask = np.isin(items, cold)
    return np.flatnonzero(~mask), np.flatnonzero(mask), cold


def holdout_fraction(
    users: np.ndarray, fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random per-user holdout for validation carved out of a training set (users keep ≥ 1 train row)."""
    train, val = stratified_split(users, ratio=1.0 - fraction, seed=seed)
    return train, val


def _sorted(parts: list[np.ndarray]) -> np.ndarray:
    return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
