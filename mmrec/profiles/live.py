"""The live path: one new event -> stored once -> folded into the stored profile incrementally."""

from __future__ import annotations

from mmrec.events.records import EventRecord
from mmrec.events.store import EventStore
from mmrec.profiles.build import ItemLookup, ItemSource, resolve_config
from mmrec.profiles.model import UserProfile
from mmrec.profiles.store import ProfileStore
from mmrec.profiles.update import ProfileConfig, update_profile


class LiveProfiles:
    """Keeps profiles current event by event without replaying history (O(k·D) per event)."""

    def __init__(self, events: EventStore, store: ItemSource, config: ProfileConfig | None = None) -> None:
        self.events = events
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
