"""What a comment analysis returns and the interface every analyzer implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class CommentAnalysis:
    """One comment understood: its language, polarity in [-1, 1] and weighted keywords."""

    text: str
    language: str  # ISO 639-1 code ("zh", "en", ...) or "und" when unknown
    sentiment: float  # -1 very negative .. +1 very positive
    keywords: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["keywords"] = [[k, float(w)] for k, w in self.keywords]
        return d


@runtime_checkable
class CommentAnalyzer(Protocol):
    """Analyzes a batch of comments; ``name`` identifies the model set for stored analyses."""

    name: str

    def analyze(self, texts: Sequence[str]) -> list[CommentAnalysis]: ...
