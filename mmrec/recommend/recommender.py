"""The live recommender: profile interests -> FAISS candidates (+ collaborative) -> blend -> MMR -> reasons.

Content candidates come from one index search per interest vector (and the self-description), so new
items with no interactions are reachable. Seen and disliked items are excluded; items close to the
user's negatives are pushed down. MMR re-ranking over fused vectors trades relevance for diversity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import scipy.sparse as sp

from mmrec.errors import InvalidInputError, MmrecError
from mmrec.events.store import EventStore
from mmrec.profiles.build import rebuild_profile
from mmrec.profiles.model import UserProfile
from mmrec.profiles.store import ProfileStore
from mmrec.profiles.update import event_weight

ReasonKind = Literal["interest", "history", "collaborative", "popular", "modality"]


@dataclass(frozen=True)
class Reason:
    kind: ReasonKind
    detail: str
    weight: float


@dataclass(frozen=True)
class Recommendation:
    item_key: int
    item_id: str
    score: float
    reasons: list[Reason] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class UnknownUserError(MmrecError, KeyError):
    """Nothing is known about the user: no events, no comments, no self-description."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(
            f"user {user_id!r} has no events, comments or self-description; "
            "ingest events (`mmrec ingest FILE`) or describe them (`mmrec describe-user USER TEXT`)"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class SearchIndex(Protocol):
    def search(
        self, queries: np.ndarray, k: int, allowed_keys: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...


class Store(Protocol):
    def get(self, item_id: str) -> Any: ...
    def get_by_keys(self, keys: Sequence[int]) -> list[Any]: ...
    def fused(self, keys: Sequence[int]) -> np.ndarray: ...
    def attention(self, keys: Sequence[int]) -> list[dict[str, float]]: ...


@dataclass(frozen=True)
class BlendConfig:
    """How the score parts combine; content similarities are cosines in the fused space."""

    content: float = 1.0
    collaborative: float = 0.3
    popularity: float = 0.05
    negative_penalty: float = 0.5  # times the best cosine to a negative cluster above ``negative_floor``
    negative_floor: float = 0.3
    description_weight: float = 0.5  # relative to the strongest interest, when both exist
    candidates_per_query: int = 100


class Recommender:
    """Recommends library items for users whose events live in ``events`` (see module doc)."""

    def __init__(
        self,
        store: Store,
        index: SearchIndex,
        events: EventStore,
        hybrid: Any | None = None,
        interactions: Any | None = None,
        fusion: Any | None = None,
        config: BlendConfig | None = None,
    ) -> None:
        """``hybrid`` is a fitted ``HybridScorer``; ``interactions`` the ``InteractionData`` it was fitted on
        (its item ids map collaborative scores to library items); ``fusion`` (optional) gives per-modality
        contributions for the modality reason."""
        self.store = store
        self.index = index
        self.events = events
        self.hybrid = hybrid
        cf_items = interactions.items if interactions is not None else getattr(hybrid, "items", None)
        self.cf_items: list[str] = list(cf_items or [])
        self.cf_index = {item: j for j, item in enumerate(self.cf_items)}
        self.fusion = fusion
        self.config = config or BlendConfig()
        self.profiles = ProfileStore(events)

    # --- profile ---
    def profile(self, user_id: str) -> UserProfile:
        """The stored profile, rebuilt from events when there is none yet or rows were added since."""
        prof = self.profiles.get(user_id)
        n_rows = self.events.count_for_user(user_id)
        if n_rows and (prof is None or prof.n_events != n_rows):
            prof = rebuild_profile(user_id, self.events, self.store)
            self.profiles.put(prof)
        if prof is None:
            raise UnknownUserError(user_id)
        return prof

    # --- recommend ---
    def recommend(self, user_id: str, k: int = 10, diversity: float = 0.0) -> list[Recommendation]:
        if k < 1:
            raise InvalidInputError("recommend", "k", f"must be >= 1, got {k}")
        if not 0.0 <= diversity <= 1.0:
            raise InvalidInputError("recommend", "diversity", f"must be within 0..1, got {diversity}")
        prof = self.profile(user_id)
        queries, labels, qweights = self._queries(prof)
        exclude = prof.seen | prof.disliked
        content: dict[int, float] = {}
        if queries.shape[0]:
            n = max(self.config.candidates_per_query, 5 * k) + len(exclude)
            scores, keys = self.index.search(queries, n)
            for row_s, row_k in zip(scores, keys, strict=True):
                for s, key in zip(row_s, row_k, strict=True):
                    if key >= 0 and int(key) not in exclude:
                        content[int(key)] = max(content.get(int(key), -1.0), float(s))
        cf, pop = self._collaborative(prof, exclude, n_extra=max(50, 5 * k))
        cand = sorted(set(content) | set(cf) | set(pop))
        if not cand:
            return []
        vecs = np.asarray(self.store.fused(cand), dtype=np.float32)
        sims = vecs @ queries.T if queries.shape[0] else np.zeros((len(cand), 0), np.float32)
        weighted = sims * qweights[None, :] if sims.size else sims
        best_q = np.argmax(weighted, axis=1) if sims.size else np.zeros(len(cand), int)
        content_score = weighted.max(axis=1) if sims.size else np.zeros(len(cand), np.float32)
        penalty = self._negative_penalty(prof, vecs)
        cf_arr = np.array([cf.get(c, 0.0) for c in cand], dtype=np.float32)
        pop_arr = np.array([pop.get(c, 0.0) for c in cand], dtype=np.float32)
        total = (
            self.config.content * content_score
            + self.config.collaborative * cf_arr
            + self.config.popularity * pop_arr
            - penalty
        )
        order = _mmr(total, vecs, k, 1.0 - diversity)
        records = self.store.get_by_keys([cand[i] for i in order])
        out: list[Recommendation] = []
        for i, rec in zip(order, records, strict=True):
            if rec is None:
                continue
            reasons = self._reasons(
                prof,
                cand[i],
                vecs[i],
                labels,
                int(best_q[i]),
                float(content_score[i]),
                float(cf_arr[i]),
                float(pop_arr[i]),
                queries,
            )
            out.append(
                Recommendation(
                    item_key=cand[i], item_id=rec.item_id, score=round(float(total[i]), 6), reasons=reasons
                )
            )
        return out

    def _queries(self, prof: UserProfile) -> tuple[np.ndarray, list[str], np.ndarray]:
        vecs: list[np.ndarray] = []
        labels: list[str] = []
        weights: list[float] = []
        top = max((i.weight for i in prof.interests), default=0.0)
        for n, interest in enumerate(sorted(prof.interests, key=lambda i: -i.weight)):
            vecs.append(interest.vector)
            kws = ", ".join(interest.top_keywords(3))
            labels.append(f"interest #{n + 1}" + (f" ({kws})" if kws else ""))
            # Weaker interests still count, but an item matching the main one ranks first on ties.
            weights.append(0.75 + 0.25 * interest.weight / top if top > 0 else 1.0)
        if prof.description_vector is not None:
            vecs.append(prof.description_vector / max(float(np.linalg.norm(prof.description_vector)), 1e-12))
            labels.append(f"self-description: {prof.description[:60]!r}")
            weights.append(self.config.description_weight if prof.interests else 1.0)
        if not vecs:
            return np.zeros((0, 0), np.float32), [], np.zeros(0, np.float32)
        return np.stack(vecs).astype(np.float32), labels, np.asarray(weights, dtype=np.float32)

    def _negative_penalty(self, prof: UserProfile, vecs: np.ndarray) -> np.ndarray:
        if not prof.negatives:
            return np.zeros(vecs.shape[0], np.float32)
        neg = np.stack(prof.negative_vectors)
        worst = (vecs @ neg.T).max(axis=1)
        return (
            self.config.negative_penalty
            * np.maximum(worst - self.config.negative_floor, 0.0)
            / (1.0 - self.config.negative_floor)
        )

    def _collaborative(
        self, prof: UserProfile, exclude: set[int], n_extra: int
    ) -> tuple[dict[int, float], dict[int, float]]:
        """Collaborative and popularity scores (each scaled to [0, 1]) by item key, top ``n_extra`` each."""
        if self.hybrid is None or not self.cf_items:
            return {}, self._popular(exclude, n_extra)
        row = np.zeros(len(self.cf_items), dtype=np.float32)
        for e in self.events.events(prof.user_id):
            j = self.cf_index.get(e.item_id)
            w = event_weight(e)
            if j is not None and w > 0:
                row[j] += w
        if not row.any():
            return {}, {}
        parts = self.hybrid.score(sp.csr_matrix(row[None, :]))
        out: list[dict[int, float]] = []
        for name in ("collaborative", "popularity"):
            s = np.asarray(parts.get(name, np.zeros((1, len(self.cf_items)))), dtype=np.float32)[0]
            top = np.argsort(-s)[: n_extra + len(exclude)]
            hi = float(s[top[0]]) if len(top) else 0.0
            scores: dict[int, float] = {}
            for j in top:
                rec = self.store.get(self.cf_items[int(j)])
                if rec is None or rec.key is None or int(rec.key) in exclude or s[j] <= 0 or hi <= 0:
                    continue
                scores[int(rec.key)] = float(s[j]) / hi
                if len(scores) >= n_extra:
                    break
            out.append(scores)
        return out[0], out[1]

    def _popular(self, exclude: set[int], n: int) -> dict[int, float]:
        """Without a collaborative model: items most users engaged with, scaled to [0, 1]."""
        counts = self.events.popular_items(n + len(exclude))
        if not counts:
            return {}
        top = counts[0][1]
        out: dict[int, float] = {}
        for item_id, c in counts:
            rec = self.store.get(item_id)
            if rec is not None and rec.key is not None and int(rec.key) not in exclude:
                out[int(rec.key)] = c / top
            if len(out) >= n:
                break
        return out

    def _reasons(
        self,
        prof: UserProfile,
        key: int,
        vec: np.ndarray,
        labels: list[str],
        q: int,
        content: float,
        cf: float,
        pop: float,
        queries: np.ndarray,
    ) -> list[Reason]:
        reasons: list[Reason] = []
        if labels and content > 0:
            reasons.append(Reason("interest", labels[q], round(content, 4)))
        hist = self._closest_history(prof, vec)
        if hist is not None:
            reasons.append(Reason("history", f"similar to {hist[0]}", round(hist[1], 4)))
        if cf > 0:
            reasons.append(
                Reason("collaborative", "users with similar history engaged with it", round(cf, 4))
            )
        if pop > 0:
            reasons.append(Reason("popular", "popular among all users", round(pop, 4)))
        mod = self._top_modality(prof, key, vec, queries[q] if queries.shape[0] else None)
        if mod is not None:
            reasons.append(Reason("modality", mod[0], round(mod[1], 4)))
        return sorted(reasons, key=lambda r: -r.weight)

    def _closest_history(self, prof: UserProfile, vec: np.ndarray) -> tuple[str, float] | None:
        keys = list(dict.fromkeys(k for i in prof.interests for k in i.items[-20:]))
        if not keys:
            return None
        hv = np.asarray(self.store.fused(keys), dtype=np.float32)
        sims = hv @ vec
        j = int(np.argmax(sims))
        rec = self.store.get_by_keys([keys[j]])[0]
        return (rec.item_id if rec else str(keys[j])), float(sims[j])

    def _top_modality(
        self, prof: UserProfile, key: int, vec: np.ndarray, query: np.ndarray | None
    ) -> tuple[str, float] | None:
        if self.fusion is not None and query is not None:
            parts = self.fusion.contributions(query, vec[None, :])[0]
        else:
            att = self.store.attention([key])[0] or {}
            prefs = prof.modality_prefs
            parts = {m: float(np.sqrt(a * prefs.get(m, 0.0))) for m, a in att.items()} if prefs else dict(att)
        if not parts:
            return None
        m = max(parts, key=lambda x: parts[x])
        return m, float(parts[m])


def _mmr(relevance: np.ndarray, vecs: np.ndarray, k: int, lam: float) -> list[int]:
    """Maximal marginal relevance: greedily pick argmax lam*rel - (1-lam)*max cos to the picked ones."""
    n = relevance.shape[0]
    if lam >= 1.0:
        return [int(i) for i in np.argsort(-relevance, kind="stable")[:k]]
    lo, hi = float(relevance.min()), float(relevance.max())
    rel = (relevance - lo) / (hi - lo) if hi > lo else np.ones_like(relevance)
    chosen: list[int] = []
    max_sim = np.full(n, -np.inf, dtype=np.float32)
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = lam * rel - (1.0 - lam) * penalty
        score[~available] = -np.inf
        i = int(np.argmax(score))
        chosen.append(i)
        available[i] = False
        max_sim = np.maximum(max_sim, vecs @ vecs[i])
    return chosen
