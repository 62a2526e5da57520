"""Profiles persisted in the library's ``events.sqlite`` (one row per user, vectors in an npz blob)."""

from __future__ import annotations

from collections.abc import Iterable

from mmrec.events.store import EventStore
from mmrec.profiles.model import UserProfile


class ProfileStore:
    """Reads and writes :class:`UserProfile` rows through an :class:`EventStore` connection."""

    def __init__(self, events: EventStore) -> None:
        self.events = events

    def get(self, user_id: str) -> UserProfile | None:
        blob = self.events.get_profile_blob(user_id)
        return None if blob is None else UserProfile.from_bytes(blob)

    def get_or_new(self, user_id: str) -> UserProfile:
        return self.get(user_id) or UserProfile(user_id=user_id)

    def put(self, profile: UserProfile) -> None:
        self.events.put_profile_blob(profile.user_id, profile.to_bytes(), profile.updated)

    def put_many(self, profiles: Iterable[UserProfile]) -> None:
        self.events.put_profile_blobs((p.user_id, p.to_bytes(), p.updated) for p in profiles)
