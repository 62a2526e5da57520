"""The live path: one new event -> stored once -> folded into the stored profile incrementally."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from mmrec.events.records import EventRecord
from mmrec.events.store import EventStore
from mmrec.profiles.build import ItemLookup, ItemSource, apply_events, rebuild_profile, resolve_config
from mmrec.profiles.model import UserProfile
from mmrec.profiles.store import ProfileStore
from mmrec.profiles.update import ProfileConfig, update_profile


class LiveProfiles:
    """Keeps profiles current event by event without replaying history (O(k·D) per event)."""

    def __init__(self, events: EventStore, store: ItemSource, config: ProfileConfig | None = None) -> None:
        self.events = events
        self.store = store
        self.profiles = ProfileStore(events)
        self.lookup = ItemLookup(store)
        self.config = resolve_config(store, config or ProfileConfig())  # calibrated once, not per event

    def record(self, event: EventRecord) -> UserProfile | None:
        """Store ``event``; when it is new, fold it into the user's profile and save. None for a duplicate."""
        if not self.events.add_events([event]):
            return None
        prof = self.profiles.get_or_new(event.user_id)
        found = self.lookup(event.item_id)
        if found is None:
            update_profile(prof, event, None, None, None, config=self.config)
        else:
            key, vec, att, kws = found
            update_profile(prof, event, vec, att, key, keywords=kws, config=self.config)
        self.profiles.put(prof)
        return prof

    def fold(self, stored: Sequence[EventRecord]) -> list[UserProfile]:
        """Fold events that were just stored into their users' profiles and save them.

        A stored profile that already reflects every other row of its user is updated in place;
        one that lags (another process ingested, or there is none yet) is rebuilt from all rows,
        so the result is the same profile a full rebuild gives, at the cost of the new rows only.
        """
        by_user: dict[str, list[EventRecord]] = defaultdict(list)
        for e in stored:
            by_user[e.user_id].append(e)
        out: list[UserProfile] = []
        for user_id, new in sorted(by_user.items()):
            prof = self.profiles.get(user_id)
            before = self.events.count_for_user(user_id) - len(new)
            if prof is not None and prof.n_events == before:
                apply_events(
                    prof, sorted(new, key=lambda e: e.timestamp), ItemLookup(self.store), self.config
                )
            else:
                prof = rebuild_profile(user_id, self.events, self.store, self.config)
            out.append(prof)
        self.profiles.put_many(out)
        return out
