"""Exploration for the slots the recommender hands over: Thompson sampling over item clusters.

The catalogue is split into clusters (spherical k-means on centred fused vectors, on a sample).
Each cluster is an arm with a Beta posterior on "the user accepts an item shown from it":

- the prior comes from the profile's evidence: a cluster holding a share ``s`` of the user's liked
  items gets ``Beta(1 + n·s, 1 + n·(1 − s))`` with ``n`` the number of liked items (or a fixed
  strength), so a cluster the user never touched starts low, and is the more uncertain the less
  the profile knows; the user's main tastes start high;
- served lists update it: every engaged serving adds a success, every ignored or skipped one a failure.

Per exploration slot one value is drawn per cluster and the best-drawn cluster that the list does
not show yet supplies its best-scored candidate. Draws come from a generator seeded with
``(seed, user, time of the request)``, so a fixed seed gives the same lists for the same state.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mmrec.profiles.update import item_keywords


@dataclass(frozen=True)
class ExploreConfig:
    """How exploration draws: clusters, prior strength, seed. The share of slots is per request."""

    seed: int = 0
    n_clusters: int | None = None  # None: about sqrt(n_items / 2), within 4..64
    sample_items: int = 5000  # k-means runs on at most this many items; the rest are assigned on demand
    # Pseudo-observations the profile's evidence is worth; None: as many as the liked items it has, so
    # users with a long history explore less and newcomers more.
    prior_strength: float | None = None
    candidates_per_cluster: int = 50
    # True: a slot only goes to a cluster the rest of the list does not show (diversify first);
    # False: the drawn cluster's best item not listed yet, whichever cluster it is.
    new_clusters_only: bool = True
    # Exploration starts once this many of the user's served items were judged (engaged or skipped):
    # 0 explores from the first list on.
    min_judged_servings: int = 0
    # How a slot picks inside its cluster: "blend" (the list's own score) or "collaborative" (what
    # users with a similar history engaged with there; see Recommender._explore_rank).
    pick: str = "blend"
    # None: a slot may take any item of its cluster; N: only items the list's own ranking puts in its
    # first N·k (exploration among plausible items, so an exploring slot is rarely a wasted one).
    plausible_rank: int | None = 3


class ClusterSource(Protocol):
    def get_by_keys(self, keys: Sequence[int]) -> list[Any]: ...
    def iter_fused(self, batch_size: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


class ItemClusters:
    """Spherical k-means clusters of the catalogue with a keyword label each."""

    def __init__(self, store: ClusterSource, config: ExploreConfig) -> None:
        import faiss

        try:
            keys, vecs = next(store.iter_fused(batch_size=config.sample_items))
        except StopIteration:
            keys, vecs = np.zeros(0, np.int64), np.zeros((0, 1), np.float32)
        vecs = np.asarray(vecs, dtype=np.float32)
        self.center = vecs.mean(axis=0) if len(vecs) else np.zeros(vecs.shape[1], np.float32)
        unit = _unit(vecs - self.center)
        n = config.n_clusters or int(np.clip(round(np.sqrt(len(keys) / 2)), 4, 64))
        n = max(1, min(n, len(keys)))
        if len(keys):
            km = faiss.Kmeans(unit.shape[1], n, niter=20, seed=config.seed, spherical=True, verbose=False)
            km.cp.min_points_per_centroid = 1  # small libraries: no warning, clusters may be small
            km.train(np.ascontiguousarray(unit))
            self.centroids = _unit(np.asarray(km.centroids, dtype=np.float32))
        else:
            self.centroids = np.zeros((0, unit.shape[1]), np.float32)
        members = self.assign(vecs) if len(keys) else np.zeros(0, np.int64)
        self._by_key = {int(key): int(c) for key, c in zip(keys, members, strict=True)}
        # Search directions in the index's own (uncentred) space: the mean of each cluster's members.
        self.queries = (
            np.stack(
                [
                    _unit(vecs[members == c].mean(axis=0, keepdims=True))[0]
                    if (members == c).any()
                    else _unit((self.centroids[c] + self.center)[None, :])[0]
                    for c in range(len(self.centroids))
                ]
            )
            if len(self.centroids)
            else np.zeros((0, vecs.shape[1]), np.float32)
        )
        self.labels = self._labels(store, keys, members, unit)

    def __len__(self) -> int:
        return len(self.centroids)

    def assign(self, vecs: np.ndarray) -> np.ndarray:
        """Cluster of each (uncentred) fused vector."""
        if len(self.centroids) == 0 or len(vecs) == 0:
            return np.zeros(len(vecs), np.int64)
        return np.argmax(_unit(np.asarray(vecs, np.float32) - self.center) @ self.centroids.T, axis=1)

    def of(self, keys: Sequence[int], vectors: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        """Cluster of each item key: remembered for the clustered sample; for other keys ``vectors(keys)``
        gives their fused vectors to assign."""
        out = np.array([self._by_key.get(int(key), -1) for key in keys], dtype=np.int64)
        missing = np.flatnonzero(out < 0)
        if len(missing):
            out[missing] = self.assign(np.asarray(vectors([int(keys[i]) for i in missing]), np.float32))
        return out

    def _labels(
        self, store: ClusterSource, keys: np.ndarray, members: np.ndarray, unit: np.ndarray
    ) -> list[str]:
        """Top keywords (tags, title words) of the items nearest each centroid."""
        labels: list[str] = []
        for c in range(len(self.centroids)):
            idx = np.flatnonzero(members == c)
            near = idx[np.argsort(-(unit[idx] @ self.centroids[c]))[:20]]
            words: Counter[str] = Counter()
            for rec in store.get_by_keys([int(keys[i]) for i in near]):
                if rec is not None:
                    words.update(item_keywords(getattr(rec, "title", ""), getattr(rec, "tags", []) or []))
            top = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
            labels.append(", ".join(top) if top else f"cluster {c + 1}")
        return labels


@dataclass(frozen=True)
class ClusterPosterior:
    """Beta(alpha, beta) per cluster for one user at one request."""

    alpha: np.ndarray
    beta: np.ndarray

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        return rng.beta(self.alpha, self.beta)


def posterior(
    n_clusters: int,
    liked: np.ndarray,
    liked_weights: np.ndarray,
    engaged: np.ndarray,
    skipped: np.ndarray,
    strength: float | None,
) -> ClusterPosterior:
    """Prior from the share of liked-item weight per cluster; successes/failures from served outcomes.

    ``liked``/``engaged``/``skipped`` are cluster ids (one per item or serving); ``liked_weights``
    the profile weight of each liked item.
    """
    strength = float(len(liked)) if strength is None else float(strength)
    mass = np.bincount(liked, weights=liked_weights, minlength=n_clusters)[:n_clusters]
    share = mass / mass.sum() if mass.sum() > 0 else np.full(n_clusters, 1.0 / max(n_clusters, 1))
    alpha = 1.0 + strength * share + np.bincount(engaged, minlength=n_clusters)[:n_clusters]
    beta = 1.0 + strength * (1.0 - share) + np.bincount(skipped, minlength=n_clusters)[:n_clusters]
    return ClusterPosterior(alpha.astype(np.float64), beta.astype(np.float64))


def request_rng(seed: int, user_id: str, now: float) -> np.random.Generator:
    """The generator for one request: fixed by the seed, the user and the request time."""
    return np.random.default_rng(
        [int(seed) & 0xFFFFFFFF, zlib.crc32(user_id.encode("utf-8")), int(round(now * 1000)) & 0xFFFFFFFF]
    )


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
