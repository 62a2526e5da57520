"""Folding one event into a profile: weights, time decay, incremental clustering into interests.

A positive item joins the nearest interest when their cosine exceeds ``tau``, else starts a new one;
when there are more than ``max_interests`` the two closest are merged. Negative signals (skip,
dislike, negative comments) cluster the same way into ``negatives``. Each step is O(k·D).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from mmrec.events.records import EventRecord
from mmrec.events.store import StoredComment
from mmrec.profiles.model import Interest, UserProfile

_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_TITLE_STOP = frozenset(
    ["the", "and", "for", "with", "from", "this", "that", "a", "an", "of", "in", "on", "to"]
)


@dataclass(frozen=True)
class ProfileConfig:
    """Knobs of profile building; the defaults rank like > share > comment > view × watch ratio."""

    event_weights: dict[str, float] = field(
        default_factory=lambda: {
            "like": 1.0,
            "share": 0.8,
            "comment": 0.5,
            "view": 0.4,
            "skip": -0.3,
            "dislike": -1.0,
        }
    )
    comment_weight: float = 0.6  # scaled by the comment's sentiment (its sign decides positive/negative)
    rating_mid: float = 3.0  # ratings above it are positive, below negative
    rating_scale: float = 2.0
    half_life_days: float | None = 90.0  # None: no time decay
    # Cosine to join an existing interest. None: calibrate on the library (see profiles.build.calibrate_tau),
    # because fused spaces differ a lot: e5 text blocks put unrelated items at cosine ~0.85.
    tau: float | None = None
    # Library mean fused vector: interests are compared after subtracting it (centred cosine), which
    # separates topics far better than raw cosines in anisotropic text-embedding spaces.
    center: np.ndarray | None = None
    max_interests: int = 6
    max_negatives: int = 4
    max_items_per_interest: int = 50
    max_keywords: int = 50


DEFAULT_CONFIG = ProfileConfig()
FALLBACK_TAU = 0.55


def event_weight(event: EventRecord | StoredComment, config: ProfileConfig = DEFAULT_CONFIG) -> float:
    """Signed strength of a signal (0 for signals that carry no preference)."""
    if isinstance(event, StoredComment):
        return config.comment_weight * float(event.sentiment or 0.0)
    if event.event == "rating":
        return float(
            np.clip(((event.value or config.rating_mid) - config.rating_mid) / config.rating_scale, -1, 1)
        )
    w = config.event_weights.get(event.event, 0.0)
    if event.event == "view":
        w *= 1.0 if event.value is None else float(event.value)
    return w


def item_keywords(title: str, tags: Iterable[str]) -> list[str]:
    """Cheap keywords of an item for interest labels: its tags, then its title words."""
    words = [t.strip().lower() for t in tags if t.strip()]
    words += [w.lower() for w in _WORD.findall(title) if w.lower() not in _TITLE_STOP]
    return list(dict.fromkeys(words))[:8]


def update_profile(
    profile: UserProfile,
    event: EventRecord | StoredComment,
    item_vector: np.ndarray | None,
    item_weights: dict[str, float] | None,
    item_key: int | None = None,
    keywords: Iterable[tuple[str, float]] | None = None,
    config: ProfileConfig = DEFAULT_CONFIG,
) -> UserProfile:
    """Fold one event (or analysed comment) into ``profile`` in place and return it.

    ``item_vector`` is the item's fused vector (None when the item is not in the library: only
    keywords and counts change); ``keywords`` are the comment's or the item's weighted keywords.
    """
    ts = event.record.timestamp if isinstance(event, StoredComment) else event.timestamp
    w = event_weight(event, config) * _decay_to(profile, ts, config)
    kws = list(keywords or [])
    if isinstance(event, StoredComment) and not kws:
        kws = event.keywords
    profile.n_events += 1
    if item_key is not None:
        profile.seen.add(int(item_key))
        is_dislike = (isinstance(event, EventRecord) and event.event == "dislike") or (
            isinstance(event, StoredComment) and (event.sentiment or 0.0) <= -0.5
        )
        if is_dislike:
            profile.disliked.add(int(item_key))
        elif w > 0:
            profile.disliked.discard(int(item_key))
    if w > 0:
        for k, s in kws:
            profile.keywords[k] = profile.keywords.get(k, 0.0) + w * float(s)
        _trim(profile.keywords, config.max_keywords)
    if item_vector is None or w == 0:
        return profile
    x = np.asarray(item_vector, dtype=np.float32).reshape(-1)
    if w > 0:
        tau = FALLBACK_TAU if config.tau is None else config.tau
        target = _assign(profile.interests, x, w, item_key, tau, config.max_items_per_interest, config.center)
        for k, s in kws:
            target.keywords[k] = target.keywords.get(k, 0.0) + w * float(s)
        _trim(target.keywords, 20)
        _merge_excess(profile.interests, config.max_interests, config.center)
        for m, a in (item_weights or {}).items():
            profile.modality_acc[m] = profile.modality_acc.get(m, 0.0) + w * float(a)
        profile.modality_mass += w
    else:
        tau = FALLBACK_TAU if config.tau is None else config.tau
        _assign(profile.negatives, x, -w, item_key, tau, config.max_items_per_interest, config.center)
        _merge_excess(profile.negatives, config.max_negatives, config.center)
    return profile


def set_description(
    profile: UserProfile, text: str, vector: np.ndarray, keywords: Iterable[tuple[str, float]] | None = None
) -> UserProfile:
    """A free-text self-description (already embedded into the fused space): cold start and a standing interest."""
    profile.description = text
    profile.description_vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    for k, s in keywords or []:
        profile.keywords[k] = max(profile.keywords.get(k, 0.0), float(s))
    return profile


def _decay_to(profile: UserProfile, ts: float, config: ProfileConfig) -> float:
    """Age every stored weight to ``ts`` when it is newer; return the factor for an older event."""
    if config.half_life_days is None or config.half_life_days <= 0:
        profile.updated = max(profile.updated, ts)
        return 1.0
    half_life = config.half_life_days * 86400.0
    first = profile.n_events == 0
    if first or ts >= profile.updated:
        if not first and ts > profile.updated:
            f = math.pow(0.5, (ts - profile.updated) / half_life)
            for group in (profile.interests, profile.negatives):
                for it in group:
                    it.acc *= f
                    it.weight *= f
            for k in profile.keywords:
                profile.keywords[k] *= f
            for m in profile.modality_acc:
                profile.modality_acc[m] *= f
            profile.modality_mass *= f
        profile.updated = ts
        return 1.0
    return math.pow(0.5, (profile.updated - ts) / half_life)


def _unit(v: np.ndarray, center: np.ndarray | None) -> np.ndarray:
    if center is not None:
        v = v - center
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _assign(
    clusters: list[Interest],
    x: np.ndarray,
    w: float,
    key: int | None,
    tau: float,
    max_items: int,
    center: np.ndarray | None = None,
) -> Interest:
    best, best_cos = None, -2.0
    xc = _unit(x, center)
    for c in clusters:
        cos = float(_unit(c.vector, center) @ xc)
        if cos > best_cos:
            best, best_cos = c, cos
    if best is None or best_cos < tau:
        best = Interest(acc=np.zeros_like(x), weight=0.0)
        clusters.append(best)
    best.acc += w * x
    best.weight += w
    if key is not None:
        if key in best.items:
            best.items.remove(int(key))
        best.items.append(int(key))
        del best.items[:-max_items]
    return best


def _merge_excess(clusters: list[Interest], limit: int, center: np.ndarray | None = None) -> None:
    while len(clusters) > limit:
        vecs = np.stack([_unit(c.vector, center) for c in clusters])
        sims = vecs @ vecs.T
        np.fill_diagonal(sims, -np.inf)
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        a, b = clusters[min(i, j)], clusters[max(i, j)]
        a.acc += b.acc
        a.weight += b.weight
        for k, s in b.keywords.items():
            a.keywords[k] = a.keywords.get(k, 0.0) + s
        a.items = list(dict.fromkeys(a.items + b.items))
        del clusters[max(i, j)]


def _trim(d: dict[str, float], n: int) -> None:
    if len(d) > n:
        for k, _ in sorted(d.items(), key=lambda kv: kv[1])[: len(d) - n]:
            del d[k]
