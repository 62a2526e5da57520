"""The item modalities, each defined once: every other list of modality names is derived from here.

A modality is one block of an item's fused vector. Its row says which encoder role's vector space
it lives in (and so its width), whether it is a set of vectors, whether a text query reaches it
directly, and what the trained bridges do with it. Adding a modality means adding a row here and
the encoder step that produces it (``pipelines/item_encoder.py``); fusion, search, the store check
and the evaluation read their lists from this table.

This module is a leaf (standard library only) so that every layer may import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Literal

Role = Literal["frames", "audio", "text"]


class UnknownModalityError(ValueError):
    """A modality name that is not in :data:`MODALITIES` (a typo, or a block from another version)."""

    def __init__(self, unknown: Iterable[str], where: str = "modalities") -> None:
        self.unknown = sorted(unknown)
        super().__init__(f"{where}: unknown modalities {self.unknown}; expected a subset of {list(names())}")


@dataclass(frozen=True)
class Modality:
    """One block of the fused vector.

    ``role``: the encoder whose vector space the block is in (its width is that model's dim).
    ``is_set``: several vectors per item (frames), pooled by the fusion; else exactly one.
    ``text_like``: embedded by the text encoder from words, so a text query fills this block with its
    own text vector. ``query_priority`` orders the text-like blocks when one has to stand for the
    query (lower first: titles before tags, visual tags, then transcripts).
    ``bridge_source``: an item's words that trained bridges learn from (text -> frames/audio).
    ``bridge_target``: a block a bridge maps a text query into (no text tower needed).
    ``made_from``: what the vector is computed from (documentation, ``mmrec inspect``).
    """

    name: str
    role: Role
    is_set: bool = False
    text_like: bool = False
    query_priority: int | None = None
    bridge_source: bool = False
    bridge_target: bool = False
    made_from: str = ""

    def __post_init__(self) -> None:
        if self.text_like != (self.query_priority is not None):
            raise ValueError(f"modality {self.name!r}: a text-like block needs a query_priority, and only it")
        if self.bridge_source and not self.text_like:
            raise ValueError(f"modality {self.name!r}: bridges start from words; a source must be text-like")
        if self.bridge_target and self.text_like:
            raise ValueError(f"modality {self.name!r}: a bridge target is a non-text space")


# The fused block order: a fused vector is these blocks, in this order, for those a library has.
MODALITIES: tuple[Modality, ...] = (
    Modality("frames", "frames", is_set=True, bridge_target=True, made_from="frame encoder on sampled frames (or the image)"),
    Modality("audio", "audio", bridge_target=True, made_from="sound encoder on the audio track"),
    Modality("speech", "text", text_like=True, query_priority=3, bridge_source=True, made_from="text encoder on the transcript"),
    Modality("text", "text", text_like=True, query_priority=0, bridge_source=True, made_from="text encoder on title + description"),
    Modality("tags", "text", text_like=True, query_priority=1, bridge_source=True, made_from="text encoder on user tags"),
    Modality("vtags", "text", text_like=True, query_priority=2, made_from="text encoder on the frame classifier's top labels"),
)  # fmt: skip


@cache
def _by_name() -> dict[str, Modality]:
    table = {m.name: m for m in MODALITIES}
    if len(table) != len(MODALITIES):
        raise ValueError("MODALITIES names a modality twice")
    return table


def names() -> tuple[str, ...]:
    """Every modality, in fused block order."""
    return tuple(m.name for m in MODALITIES)


def get(name: str) -> Modality:
    """The table row of ``name``; an unknown name raises :class:`UnknownModalityError`."""
    try:
        return _by_name()[name]
    except KeyError:
        raise UnknownModalityError([name]) from None


def role_of(name: str) -> Role:
    """The encoder role whose vector space (and width) the modality's block has."""
    return get(name).role


def set_modality() -> str:
    """The one modality holding a set of vectors per item (the fusion pools it)."""
    (found,) = (m.name for m in MODALITIES if m.is_set)
    return found


def text_blocks() -> tuple[str, ...]:
    """Blocks a text query fills with its own vector, in query priority (the first stands for the query)."""
    rows = sorted((m for m in MODALITIES if m.text_like), key=lambda m: m.query_priority or 0)
    return tuple(m.name for m in rows)


def bridge_sources() -> tuple[str, ...]:
    """Text-like blocks bridges learn from, in query priority (an item's first present one is its words)."""
    return tuple(m for m in text_blocks() if get(m).bridge_source)


def bridge_inputs() -> tuple[str, ...]:
    """Query blocks a bridge may read, best first: the bridge sources, then the other text-like blocks."""
    return (*bridge_sources(), *(m for m in text_blocks() if not get(m).bridge_source))


def bridge_targets() -> tuple[str, ...]:
    """Non-text blocks a bridge maps a text query into, in block order."""
    return tuple(m.name for m in MODALITIES if m.bridge_target)


def check_names(given: Iterable[str], where: str = "modalities") -> list[str]:
    """``given`` in fused block order; any name outside the table raises :class:`UnknownModalityError`."""
    wanted = set(given)
    unknown = wanted - set(names())
    if unknown:
        raise UnknownModalityError(unknown, where)
    return [m for m in names() if m in wanted]


def block_dims(role_dims: Mapping[str, int]) -> dict[str, int]:
    """Block widths (in block order) of every modality whose encoder role has a width > 0."""
    return {m.name: int(role_dims[m.role]) for m in MODALITIES if int(role_dims.get(m.role) or 0) > 0}
