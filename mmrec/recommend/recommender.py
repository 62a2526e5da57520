"""The live recommender: profile interests -> FAISS candidates (+ collaborative) -> blend -> MMR -> reasons.

Content candidates come from one index search per interest vector (and the self-description), so new
items with no interactions are reachable. Seen and disliked items are excluded; items close to the
user's negatives are pushed down. MMR re-ranking over fused vectors trades relevance for diversity.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import scipy.sparse as sp

from mmrec.errors import InvalidInputError, MmrecError
from mmrec.events.records import EventRecord
from mmrec.events.store import EventStore
from mmrec.profiles.build import rebuild_profile
from mmrec.profiles.model import UserProfile
from mmrec.profiles.store import ProfileStore
from mmrec.profiles.update import event_weight
from mmrec.recommend.explore import ExploreConfig, ItemClusters, posterior, request_rng

ReasonKind = Literal["interest", "history", "collaborative", "popular", "modality", "explore"]


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


@dataclass(frozen=True)
class ServedConfig:
    """What served lists do to later ones: an ignored item sinks, one skipped twice rests a while."""

    skip_penalty: float = 0.5  # subtracted from the blended score per skipped serving (cosines are ≤ 1)
    skip_limit: int = 2  # skipped this many times: not served again for ``cooldown_s``
    cooldown_s: float = 7 * 86400.0
    horizon_s: float = 90 * 86400.0  # servings older than this are forgotten
    settle_s: float = 60.0  # asking again within this long (a reload) does not skip the previous list


@dataclass(frozen=True)
class RefitPolicy:
    """When the folded-in collaborative model should be refitted (see :meth:`Recommender.needs_refit`)."""

    max_pending_events: int = 1000  # events folded in since the last fit
    max_unknown_items: int = 20  # items with events that the fitted model has no column for


@dataclass(frozen=True)
class RefitReport:
    """What a refit did: how many users and items the new model knows, and how long it took."""

    fitted: bool
    n_users: int
    n_items: int
    pending_before: int
    seconds: float
    n_interactions: int = 0  # distinct (user, item) pairs with a positive event
    version: str = ""  # the new model's version ("" when nothing could be fitted)
    version_before: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _UserRow:
    """A user's interaction row over the model's items, folded event by event (EASE scores are X_u·B)."""

    x: np.ndarray
    n_rows: int  # events + comments stored for the user when the row was last in sync


@dataclass
class _Scored:
    """Blended scores of some candidate keys and the parts the reasons quote."""

    keys: list[int]
    vecs: np.ndarray
    content: np.ndarray
    best_q: np.ndarray
    cf: np.ndarray
    pop: np.ndarray
    total: np.ndarray


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
        served: ServedConfig | None = None,
        exploration: ExploreConfig | None = None,
        refit_policy: RefitPolicy | None = None,
    ) -> None:
        """``hybrid`` is a fitted ``HybridScorer``; ``interactions`` the ``InteractionData`` it was fitted on
        (its item ids map collaborative scores to library items); ``fusion`` (optional) gives per-modality
        contributions for the modality reason."""
        self.store = store
        self.index = index
        self.events = events
        self.fusion = fusion
        self.config = config or BlendConfig()
        self.served_config = served or ServedConfig()
        self.explore_config = exploration or ExploreConfig()
        self.refit_policy = refit_policy or RefitPolicy()
        self.profiles = ProfileStore(events)
        self._lock = threading.RLock()
        self._clusters: ItemClusters | None = None
        self.last_fit: RefitReport | None = None  # the latest refit(), None while the model was handed in
        self._set_model(hybrid, interactions)

    def _set_model(self, hybrid: Any | None, interactions: Any | None) -> None:
        with self._lock:
            self.hybrid = hybrid
            cf_items = interactions.items if interactions is not None else getattr(hybrid, "items", None)
            self.cf_items: list[str] = list(cf_items or [])
            self.cf_index = {item: j for j, item in enumerate(self.cf_items)}
            self._cf_keys: dict[int, int] | None = None
            self._rows: dict[str, _UserRow] = {}
            self._pending = 0
            self._unknown: set[str] = set()

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

    # --- the collaborative signal: fold-in now, refit later ---
    def observe(self, events: Sequence[EventRecord]) -> None:
        """Fold new (already stored) events into the users' collaborative rows at once, without a refit.

        EASE scores a user as X_u·B with B fixed, so adding an event is adding its weight to X_u.
        Users whose row is not cached yet are built from the store on their next request.
        """
        with self._lock:
            for e in events:
                j = self.cf_index.get(e.item_id)
                w = event_weight(e)
                if j is None and w > 0 and self.cf_items:
                    self._unknown.add(e.item_id)
                row = self._rows.get(e.user_id)
                if row is None:
                    continue
                row.n_rows += 1
                if j is not None and w > 0:
                    row.x[j] += w
            self._pending += len(events)

    @property
    def pending_events(self) -> int:
        """Events folded in since the collaborative model was fitted."""
        return self._pending

    def needs_refit(self) -> bool:
        """True when enough was folded in (or enough new items gathered events) to fit the model again."""
        with self._lock:
            return (
                self._pending >= self.refit_policy.max_pending_events
                or len(self._unknown) >= self.refit_policy.max_unknown_items
            )

    def refit(self, fitted: tuple[Any, Any] | None = None) -> RefitReport:
        """Swap in a collaborative model fitted on every stored event (or the given ``(hybrid, data)``).

        Fitting runs outside the lock; requests keep the old model until the new one is in place.
        """
        started = time.perf_counter()
        pending = self._pending
        before = str(getattr(self.hybrid, "version", "") or "")
        if fitted is None:
            from mmrec.recommend.live_hybrid import fit_live_hybrid

            fitted = fit_live_hybrid(self.events, self.store)  # type: ignore[arg-type]
        hybrid, data = fitted if fitted is not None else (None, None)
        self._set_model(hybrid, data)
        self.last_fit = RefitReport(
            fitted=hybrid is not None,
            n_users=int(getattr(data, "n_users", 0)),
            n_items=len(self.cf_items),
            pending_before=pending,
            seconds=round(time.perf_counter() - started, 4),
            n_interactions=int(data.matrix.nnz) if data is not None else 0,
            version=str(getattr(hybrid, "version", "") or ""),
            version_before=before,
        )
        return self.last_fit

    def forget_user(self, user_id: str) -> dict[str, object]:
        """Drop everything held in memory about ``user_id`` (call after their rows left the store).

        The cached collaborative row goes; the fitted model forgets the user exactly when it can
        (``HybridScorer.forget_user``), else it is refitted on the remaining events. Returns what
        was done to the model: ``method`` (downdate, refit, none) and the versions.
        """
        with self._lock:
            self._rows.pop(user_id, None)
            hybrid = self.hybrid
        before = str(getattr(hybrid, "version", "") or "")
        if hybrid is None:
            return {"method": "none", "held_user": False, "version_before": None, "version_after": None}
        forget = getattr(hybrid, "forget_user", None)
        if callable(forget):
            try:
                with self._lock:
                    done = forget(user_id)
            except MmrecError:  # no inverse kept: fall through to a refit, the exact alternative
                pass
            else:
                if done is None:
                    return {
                        "method": "none",
                        "held_user": False,
                        "version_before": before,
                        "version_after": before,
                    }
                return {"method": "sherman-morrison downdate", "held_user": True, **done}
        report = self.refit()
        return {
            "method": "refit",
            "held_user": True,
            "version_before": before,
            "version_after": str(getattr(self.hybrid, "version", "") or ""),
            "refit_seconds": report.seconds,
        }

    def maybe_refit(self) -> RefitReport | None:
        """Refit when :meth:`needs_refit` says so (call it on a schedule, e.g. from ``mmrec refit``)."""
        return self.refit() if self.needs_refit() else None

    def _user_row(self, user_id: str, n_rows: int) -> np.ndarray:
        with self._lock:
            row = self._rows.get(user_id)
            if row is not None and row.n_rows == n_rows:
                return row.x.copy()
        x = np.zeros(len(self.cf_items), dtype=np.float32)
        for e in self.events.events(user_id):
            j = self.cf_index.get(e.item_id)
            w = event_weight(e)
            if j is not None and w > 0:
                x[j] += w
        with self._lock:
            if len(x) == len(self.cf_items):  # the model was not swapped meanwhile
                self._rows[user_id] = _UserRow(x.copy(), n_rows)
        return x

    def collaborative_scores(self, user_id: str) -> dict[str, np.ndarray]:
        """The hybrid model's per-component scores over its items for ``user_id`` (empty without a model)."""
        if self.hybrid is None or not self.cf_items:
            return {}
        x = self._user_row(user_id, self.events.count_for_user(user_id))
        if not x.any():
            return {}
        return {
            name: np.asarray(v, dtype=np.float32)[0]
            for name, v in self.hybrid.score(sp.csr_matrix(x[None, :])).items()
        }

    def _cf_key_index(self) -> dict[int, int]:
        """Library key -> column of the collaborative model (looked up once per model)."""
        if self._cf_keys is None:
            out: dict[int, int] = {}
            for j, item in enumerate(self.cf_items):
                rec = self.store.get(item)
                if rec is not None and rec.key is not None:
                    out[int(rec.key)] = j
            self._cf_keys = out
        return self._cf_keys

    # --- recommend ---
    def recommend(
        self,
        user_id: str,
        k: int = 10,
        diversity: float = 0.0,
        explore: float | None = None,
        record_served: bool = False,
        now: float | None = None,
    ) -> list[Recommendation]:
        """The top ``k`` items for ``user_id``.

        ``explore`` is the share of the ``k`` slots handed to the exploration policy (None or 0: off;
        at least one slot when above 0), filled at the end of the list. ``record_served`` remembers
        the list in the event store so later requests can count skips; ``now`` is the request time.
        """
        if k < 1:
            raise InvalidInputError("recommend", "k", f"must be >= 1, got {k}")
        if not 0.0 <= diversity <= 1.0:
            raise InvalidInputError("recommend", "diversity", f"must be within 0..1, got {diversity}")
        if explore is not None and not 0.0 <= explore <= 1.0:
            raise InvalidInputError("recommend", "explore", f"must be within 0..1, got {explore}")
        now = time.time() if now is None else float(now)
        prof = self.profile(user_id)
        queries, labels, qweights = self._queries(prof)
        skips, engaged, blocked = self._served(user_id, now)
        exclude = prof.seen | prof.disliked | blocked
        content: dict[int, float] = {}
        if queries.shape[0]:
            # Skipped items stay candidates (down-weighted), so they must not crowd fresh ones out.
            n = max(self.config.candidates_per_query, 5 * k) + len(exclude) + len(skips)
            scores, keys = self.index.search(queries, n)
            for row_s, row_k in zip(scores, keys, strict=True):
                for s, key in zip(row_s, row_k, strict=True):
                    if key >= 0 and int(key) not in exclude:
                        content[int(key)] = max(content.get(int(key), -1.0), float(s))
        cf_vec, pop_vec = self._collaborative_vectors(prof)
        cf, pop = self._top_collaborative(cf_vec, pop_vec, exclude, n_extra=max(50, 5 * k) + len(skips))
        cand = sorted(set(content) | set(cf) | set(pop))
        if not cand:
            return []
        scored = self._score(cand, prof, queries, qweights, cf_vec, pop_vec, skips, pop)
        n_explore = 0 if not explore else min(k, max(1, round(explore * k)))
        if sum(skips.values()) + sum(engaged.values()) < self.explore_config.min_judged_servings:
            n_explore = 0
        order = _mmr(scored.total, scored.vecs, k, 1.0 - diversity)
        chosen: list[tuple[_Scored, int, Reason | None]] = [(scored, i, None) for i in order[: k - n_explore]]
        if n_explore:
            picks = self._explore(
                user_id,
                prof,
                now,
                n_explore,
                scored,
                order[: k - n_explore],
                exclude,
                queries,
                qweights,
                (cf_vec, pop_vec, skips, engaged),
                pop,
            )
            chosen += picks
            taken = {s.keys[i] for s, i, _ in chosen}
            chosen += [(scored, i, None) for i in order[k - n_explore :] if scored.keys[i] not in taken][
                : k - len(chosen)
            ]
        records = self.store.get_by_keys([s.keys[i] for s, i, _ in chosen])
        out: list[Recommendation] = []
        for (s, i, why), rec in zip(chosen, records, strict=True):
            if rec is None:
                continue
            reasons = self._reasons(
                prof,
                s.keys[i],
                s.vecs[i],
                labels,
                int(s.best_q[i]),
                float(s.content[i]),
                float(s.cf[i]),
                float(s.pop[i]),
                queries,
            )
            if why is not None:
                reasons = [why, *reasons]
            out.append(
                Recommendation(
                    item_key=s.keys[i],
                    item_id=rec.item_id,
                    score=round(float(s.total[i]), 6),
                    reasons=reasons,
                )
            )
        if record_served and out:
            self.events.record_served(user_id, [r.item_id for r in out], now)
        return out

    def _served(self, user_id: str, now: float) -> tuple[dict[int, int], dict[int, int], set[int]]:
        """(skipped servings per key, engaged servings per key, keys resting after too many skips)."""
        cfg = self.served_config
        stats = self.events.served(user_id, since=now - cfg.horizon_s, as_of=now, settle_s=cfg.settle_s)
        skips: dict[int, int] = {}
        engaged: dict[int, int] = {}
        blocked: set[int] = set()
        for item_id, st in stats.items():
            if not st.times_skipped and not st.times_engaged:
                continue
            rec = self.store.get(item_id)
            if rec is None or rec.key is None:
                continue
            key = int(rec.key)
            if st.times_skipped:
                skips[key] = st.times_skipped
                if st.times_skipped >= cfg.skip_limit and now - st.last_served < cfg.cooldown_s:
                    blocked.add(key)
            if st.times_engaged:
                engaged[key] = st.times_engaged
        return skips, engaged, blocked

    def _score(
        self,
        keys: list[int],
        prof: UserProfile,
        queries: np.ndarray,
        qweights: np.ndarray,
        cf_vec: np.ndarray | None,
        pop_vec: np.ndarray | None,
        skips: dict[int, int],
        fallback_pop: dict[int, float] | None = None,
    ) -> _Scored:
        vecs = np.asarray(self.store.fused(keys), dtype=np.float32)
        sims = vecs @ queries.T if queries.shape[0] else np.zeros((len(keys), 0), np.float32)
        weighted = sims * qweights[None, :] if sims.size else sims
        best_q = np.argmax(weighted, axis=1) if sims.size else np.zeros(len(keys), int)
        content_score = weighted.max(axis=1) if sims.size else np.zeros(len(keys), np.float32)
        penalty = self._negative_penalty(prof, vecs)
        cols = self._cf_key_index() if cf_vec is not None or pop_vec is not None else {}
        pos = [cols.get(c) for c in keys]

        def lookup(v: np.ndarray | None) -> np.ndarray:
            if v is None:
                return np.zeros(len(keys), np.float32)
            return np.array([max(float(v[j]), 0.0) if j is not None else 0.0 for j in pos], np.float32)

        cf_arr, pop_arr = lookup(cf_vec), lookup(pop_vec)
        if self.hybrid is None and fallback_pop:  # no collaborative model: event counts stand in
            pop_arr = np.array([fallback_pop.get(c, 0.0) for c in keys], np.float32)
        skip_arr = np.array([skips.get(c, 0) for c in keys], np.float32)
        total = (
            self.config.content * content_score
            + self.config.collaborative * cf_arr
            + self.config.popularity * pop_arr
            - penalty
            - self.served_config.skip_penalty * skip_arr
        )
        return _Scored(list(keys), vecs, content_score, best_q, cf_arr, pop_arr, total.astype(np.float32))

    def item_clusters(self) -> ItemClusters | None:
        """The catalogue clusters exploration draws from (built on first use), None for an empty library."""
        with self._lock:
            if self._clusters is None:
                self._clusters = ItemClusters(self.store, self.explore_config)  # type: ignore[arg-type]
            return self._clusters if len(self._clusters) else None

    def _explore(
        self,
        user_id: str,
        prof: UserProfile,
        now: float,
        n_slots: int,
        scored: _Scored,
        listed: list[int],
        exclude: set[int],
        queries: np.ndarray,
        qweights: np.ndarray,
        signals: tuple[np.ndarray | None, np.ndarray | None, dict[int, int], dict[int, int]],
        fallback_pop: dict[int, float],
    ) -> list[tuple[_Scored, int, Reason | None]]:
        """Fill ``n_slots`` by Thompson sampling over item clusters (see :mod:`mmrec.recommend.explore`)."""
        clusters = self.item_clusters()
        if clusters is None:
            return []
        cf_vec, pop_vec, skips, engaged = signals
        liked = [(key, i.weight / max(len(i.items), 1)) for i in prof.interests for key in i.items]
        liked_c = clusters.of([k for k, _ in liked], self.store.fused)
        outcome_keys = [k for k, n in engaged.items() for _ in range(n)] + [
            k for k, n in skips.items() for _ in range(n)
        ]
        outcome_c = clusters.of(outcome_keys, self.store.fused)
        n_engaged = sum(engaged.values())
        post = posterior(
            len(clusters),
            liked_c.astype(np.int64),
            np.array([w for _, w in liked], np.float64),
            outcome_c[:n_engaged].astype(np.int64),
            outcome_c[n_engaged:].astype(np.int64),
            self.explore_config.prior_strength,
        )
        rng = request_rng(self.explore_config.seed, user_id, now)
        cand_c = clusters.of(scored.keys, self.store.fused)
        used = {int(cand_c[i]) for i in listed} if self.explore_config.new_clusters_only else set()

        def score_pool(pool: list[int]) -> _Scored:
            return self._score(pool, prof, queries, qweights, cf_vec, pop_vec, skips, fallback_pop)

        taken = {scored.keys[i] for i in listed}
        ceiling = self.explore_config.plausible_rank
        plausible = np.zeros(len(scored.keys), dtype=bool)
        if ceiling is not None:
            plausible[np.argsort(-scored.total, kind="stable")[: ceiling * (len(listed) + n_slots)]] = True
        picks: list[tuple[_Scored, int, Reason | None]] = []
        for _ in range(n_slots):
            theta = post.draw(rng)
            # First among the items the list's own ranking finds plausible; where no cluster left has
            # one (small libraries), anywhere in the drawn cluster.
            for restrict in (True, False) if ceiling is not None else (False,):
                pick = self._explore_pick(
                    theta, restrict, plausible, scored, cand_c, clusters, used, taken, exclude, score_pool
                )
                if pick is not None:
                    picks.append(pick)
                    break
        return picks

    def _explore_pick(
        self,
        theta: np.ndarray,
        restrict: bool,
        plausible: np.ndarray,
        scored: _Scored,
        cand_c: np.ndarray,
        clusters: ItemClusters,
        used: set[int],
        taken: set[int],
        exclude: set[int],
        score_pool: Callable[[list[int]], _Scored],
    ) -> tuple[_Scored, int, Reason | None] | None:
        """The best-drawn cluster's best item for one slot (see :meth:`_explore`), or None."""
        for c in np.argsort(-theta, kind="stable"):
            c = int(c)
            if c in used:
                continue
            members = np.flatnonzero((cand_c == c) & plausible) if restrict else np.flatnonzero(cand_c == c)
            pool = [scored.keys[i] for i in members if scored.keys[i] not in taken]
            if not restrict:
                used.add(c)
                _, found = self.index.search(
                    clusters.queries[c][None, :], self.explore_config.candidates_per_cluster + len(exclude)
                )
                pool += [int(x) for x in found[0] if x >= 0 and int(x) not in exclude and int(x) not in taken]
            pool = list(dict.fromkeys(pool))
            if not pool:
                continue
            extra = score_pool(pool)
            inside = np.flatnonzero(clusters.of(extra.keys, self.store.fused) == c)
            if not len(inside):
                continue
            used.add(c)
            best = int(inside[np.argmax(self._explore_rank(extra)[inside])])
            taken.add(extra.keys[best])
            why = Reason("explore", f"exploring: {clusters.labels[c]}", round(float(theta[c]), 4))
            return extra, best, why
        return None

    def _explore_rank(self, scored: _Scored) -> np.ndarray:
        """How an exploring slot ranks the items of the cluster it drew.

        The content part of the blend is closeness to the interests the user already has, the
        wrong yardstick inside a cluster they have not shown: it favours the cluster's edge towards
        old tastes. With ``ExploreConfig.pick="collaborative"`` the slot takes what users with a
        similar history engaged with there (collaborative + popularity, less skips and negatives),
        falling back to the whole blend where those signals say nothing.
        """
        if self.explore_config.pick != "collaborative":
            return scored.total
        rest = scored.total - self.config.content * scored.content
        if not (scored.cf.any() or scored.pop.any()):
            return scored.total
        return rest + 1e-3 * scored.total  # ties (no collaborative opinion) go to the blend

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

    def _collaborative_vectors(self, prof: UserProfile) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Collaborative and popularity scores over the model's items, each scaled so the best is 1."""
        if self.hybrid is None or not self.cf_items:
            return None, None
        parts = self.collaborative_scores(prof.user_id)
        if not parts:
            return None, None
        out: list[np.ndarray | None] = []
        for name in ("collaborative", "popularity"):
            s = parts.get(name)
            hi = float(s.max()) if s is not None and len(s) else 0.0
            out.append(None if s is None or hi <= 0 else s / hi)
        return out[0], out[1]

    def _top_collaborative(
        self, cf_vec: np.ndarray | None, pop_vec: np.ndarray | None, exclude: set[int], n_extra: int
    ) -> tuple[dict[int, float], dict[int, float]]:
        """The ``n_extra`` best collaborative and popularity candidates (by key) outside ``exclude``."""
        if self.hybrid is None or not self.cf_items:
            return {}, self._popular(exclude, n_extra)
        keys = {j: key for key, j in self._cf_key_index().items()}
        out: list[dict[int, float]] = []
        for s in (cf_vec, pop_vec):
            scores: dict[int, float] = {}
            if s is not None:
                for j in np.argsort(-s, kind="stable")[: n_extra + len(exclude)]:
                    key = keys.get(int(j))
                    if key is None or key in exclude or s[j] <= 0:
                        continue
                    scores[key] = float(s[j])
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
