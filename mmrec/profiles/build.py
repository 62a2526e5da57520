"""Replaying stored events and comments into profiles, looking item vectors up in the library store."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from mmrec.events.records import EventRecord
from mmrec.events.store import EventStore, StoredComment
from mmrec.profiles.model import UserProfile
from mmrec.profiles.store import ProfileStore
from mmrec.profiles.update import DEFAULT_CONFIG, FALLBACK_TAU, ProfileConfig, item_keywords, update_profile


class ItemSource(Protocol):
    """The part of ``mmrec.store.LibraryStore`` profiles need."""

    def get(self, item_id: str) -> Any: ...
    def fused(self, keys: Sequence[int]) -> np.ndarray: ...
    def attention(self, keys: Sequence[int]) -> list[dict[str, float]]: ...
    def iter_fused(self, batch_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


def calibrate(
    store: ItemSource, quantile: float = 0.75, sample: int = 2000, seed: int = 0
) -> tuple[float, np.ndarray | None]:
    """(tau, center): the library's mean fused vector and a high quantile of centred random-pair cosines.

    Joining an interest needs more similarity than most unrelated pairs show; the quantile adapts
    the threshold to how spread out this library's fused space is.
    """
    try:
        keys, vecs = next(store.iter_fused(batch_size=sample))
    except StopIteration:
        return FALLBACK_TAU, None
    if len(keys) < 3:
        return FALLBACK_TAU, None
    center = vecs.mean(axis=0).astype(np.float32)
    unit = vecs - center
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(keys), 4 * sample)
    j = rng.integers(0, len(keys), 4 * sample)
    keep = i != j
    sims = np.einsum("ij,ij->i", unit[i[keep]], unit[j[keep]])
    return float(np.clip(np.quantile(sims, quantile), -0.5, 0.95)), center


def calibrate_tau(store: ItemSource, quantile: float = 0.75) -> float:
    """The interest threshold alone (centred cosine), see :func:`calibrate`."""
    return calibrate(store, quantile)[0]


def resolve_config(store: ItemSource, config: ProfileConfig = DEFAULT_CONFIG) -> ProfileConfig:
    """``config`` with its interest threshold and centre calibrated on ``store`` when left as None."""
    if config.tau is not None:
        return config
    tau, center = calibrate(store)
    return dataclasses.replace(config, tau=tau, center=center)


class ItemLookup:
    """item_id -> (key, fused vector, attention weights, keywords), cached for one replay."""

    def __init__(self, store: ItemSource) -> None:
        self.store = store
        self._cache: dict[str, tuple[int, np.ndarray, dict[str, float], list[tuple[str, float]]] | None] = {}

    def __call__(
        self, item_id: str
    ) -> tuple[int, np.ndarray, dict[str, float], list[tuple[str, float]]] | None:
        if item_id not in self._cache:
            rec = self.store.get(item_id)
            if rec is None or rec.key is None or getattr(rec, "status", "ok") != "ok":
                self._cache[item_id] = None
            else:
                key = int(rec.key)
                vec = np.asarray(self.store.fused([key])[0], dtype=np.float32)
                att = self.store.attention([key])[0] or {}
                kws = [(k, 1.0) for k in item_keywords(rec.title, rec.tags)]
                self._cache[item_id] = (key, vec, att, kws)
        return self._cache[item_id]


def apply_events(
    profile: UserProfile,
    rows: Iterable[EventRecord | StoredComment],
    lookup: ItemLookup,
    config: ProfileConfig = DEFAULT_CONFIG,
) -> UserProfile:
    """Fold events and analysed comments (in the given order) into ``profile``."""
    for row in rows:
        item_id = row.record.item_id if isinstance(row, StoredComment) else row.item_id
        found = lookup(item_id)
        if found is None:
            update_profile(profile, row, None, None, None, config=config)
            continue
        key, vec, att, kws = found
        # Comments bring their own keywords; other events label the interest with the item's.
        update_profile(
            profile,
            row,
            vec,
            att,
            key,
            keywords=None if isinstance(row, StoredComment) else kws,
            config=config,
        )
    return profile


def rebuild_profile(
    user_id: str, events: EventStore, store: ItemSource, config: ProfileConfig = DEFAULT_CONFIG
) -> UserProfile:
    """A user's profile from all their stored rows in time order (keeps a stored self-description)."""
    old = ProfileStore(events).get(user_id)
    rows: list[EventRecord | StoredComment] = [*events.events(user_id), *events.comments(user_id)]
    rows.sort(key=lambda r: r.record.timestamp if isinstance(r, StoredComment) else r.timestamp)
    profile = UserProfile(user_id=user_id)
    if old is not None and old.description_vector is not None:
        profile.description = old.description
        profile.description_vector = old.description_vector
    return apply_events(profile, rows, ItemLookup(store), resolve_config(store, config))


def refresh_profiles(
    user_ids: Iterable[str], events: EventStore, store: ItemSource, config: ProfileConfig = DEFAULT_CONFIG
) -> list[UserProfile]:
    """Rebuild and save the profiles of ``user_ids`` (after an ingest touched them)."""
    config = resolve_config(store, config)
    profiles = [rebuild_profile(u, events, store, config) for u in sorted(set(user_ids))]
    ProfileStore(events).put_many(profiles)
    return profiles
