"""User profiles: several interest vectors in the fused item space, negatives, keywords, modality preferences."""

from mmrec.profiles.build import (
    ItemLookup,
    apply_events,
    calibrate,
    calibrate_tau,
    rebuild_profile,
    refresh_profiles,
    resolve_config,
)
from mmrec.profiles.live import LiveProfiles
from mmrec.profiles.model import Interest, UserProfile
from mmrec.profiles.store import ProfileStore
from mmrec.profiles.update import DEFAULT_CONFIG, ProfileConfig, event_weight, set_description, update_profile

__all__ = [
    "DEFAULT_CONFIG",
    "Interest",
    "ItemLookup",
    "LiveProfiles",
    "ProfileConfig",
    "ProfileStore",
    "UserProfile",
    "apply_events",
    "calibrate",
    "calibrate_tau",
    "event_weight",
    "rebuild_profile",
    "refresh_profiles",
    "resolve_config",
    "set_description",
    "update_profile",
]
