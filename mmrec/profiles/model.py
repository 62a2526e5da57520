"""What we know about a user: several interest vectors in the fused item space, and the rest."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Interest:
    """A cluster of liked items: ``acc`` is the weighted sum of their unit vectors, ``weight`` its mass."""

    acc: np.ndarray  # (D,) float32, unnormalised
    weight: float
    keywords: dict[str, float] = field(default_factory=dict)
    items: list[int] = field(default_factory=list)  # source item keys, most recent last

    @property
    def vector(self) -> np.ndarray:
        """Unit centroid: the direction the recommender searches in."""
        n = float(np.linalg.norm(self.acc))
        return (self.acc / n).astype(np.float32) if n > 0 else self.acc.astype(np.float32)

    def top_keywords(self, n: int = 5) -> list[str]:
        return [k for k, _ in sorted(self.keywords.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


@dataclass(eq=False)
class UserProfile:
    """Interests, negatives, keywords and modality preferences; weights are decayed to ``updated``."""

    user_id: str
    interests: list[Interest] = field(default_factory=list)
    negatives: list[Interest] = field(default_factory=list)  # clusters of skipped / disliked items
    keywords: dict[str, float] = field(default_factory=dict)
    modality_acc: dict[str, float] = field(default_factory=dict)
    modality_mass: float = 0.0
    seen: set[int] = field(default_factory=set)
    disliked: set[int] = field(default_factory=set)
    description: str = ""
    description_vector: np.ndarray | None = None
    updated: float = 0.0  # unix time of the latest event folded in
    n_events: int = 0

    @property
    def modality_prefs(self) -> dict[str, float]:
        """Average attention weight per modality over positively weighted items (sums to 1)."""
        total = sum(self.modality_acc.values())
        if total <= 0:
            return {}
        return {m: v / total for m, v in sorted(self.modality_acc.items())}

    @property
    def negative_vectors(self) -> list[np.ndarray]:
        return [n.vector for n in self.negatives]

    def top_keywords(self, n: int = 10) -> list[tuple[str, float]]:
        return sorted(self.keywords.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    @property
    def is_cold(self) -> bool:
        return not self.interests

    def to_summary(self) -> dict:
        """JSON-friendly view for the CLI (vectors left out)."""
        return {
            "user_id": self.user_id,
            "interests": [
                {"weight": round(i.weight, 4), "keywords": i.top_keywords(), "items": i.items[-10:]}
                for i in sorted(self.interests, key=lambda i: -i.weight)
            ],
            "negatives": [{"weight": round(n.weight, 4), "items": n.items[-10:]} for n in self.negatives],
            "keywords": dict(self.top_keywords(20)),
            "modality_prefs": {m: round(v, 4) for m, v in self.modality_prefs.items()},
            "seen": len(self.seen),
            "disliked": sorted(self.disliked),
            "description": self.description,
            "n_events": self.n_events,
            "updated": self.updated,
        }

    # --- serialisation: one npz blob (vectors) with a JSON member (everything else) ---
    def to_bytes(self) -> bytes:
        meta = {
            "user_id": self.user_id,
            "interests": [
                {"weight": i.weight, "keywords": i.keywords, "items": i.items} for i in self.interests
            ],
            "negatives": [
                {"weight": n.weight, "keywords": n.keywords, "items": n.items} for n in self.negatives
            ],
            "keywords": self.keywords,
            "modality_acc": self.modality_acc,
            "modality_mass": self.modality_mass,
            "seen": sorted(self.seen),
            "disliked": sorted(self.disliked),
            "description": self.description,
            "updated": self.updated,
            "n_events": self.n_events,
            "saved": time.time(),
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        }
        if self.interests:
            arrays["interests"] = np.stack([i.acc for i in self.interests]).astype(np.float32)
        if self.negatives:
            arrays["negatives"] = np.stack([n.acc for n in self.negatives]).astype(np.float32)
        if self.description_vector is not None:
            arrays["description"] = self.description_vector.astype(np.float32)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> UserProfile:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
            acc = z["interests"] if "interests" in z else np.zeros((0, 0), np.float32)
            neg = z["negatives"] if "negatives" in z else np.zeros((0, 0), np.float32)
            desc = np.array(z["description"]) if "description" in z else None

        def clusters(rows: np.ndarray, metas: list[dict]) -> list[Interest]:
            return [
                Interest(
                    acc=np.array(r),
                    weight=float(m["weight"]),
                    keywords=dict(m["keywords"]),
                    items=list(m["items"]),
                )
                for r, m in zip(rows, metas, strict=True)
            ]

        return cls(
            user_id=meta["user_id"],
            interests=clusters(acc, meta["interests"]),
            negatives=clusters(neg, meta["negatives"]),
            keywords={k: float(v) for k, v in meta["keywords"].items()},
            modality_acc={k: float(v) for k, v in meta["modality_acc"].items()},
            modality_mass=float(meta["modality_mass"]),
            seen=set(meta["seen"]),
            disliked=set(meta["disliked"]),
            description=meta["description"],
            description_vector=desc,
            updated=float(meta["updated"]),
            n_events=int(meta["n_events"]),
        )
