"""Cross-modal bridges: learned maps from the text space into another block's space (frames, audio).

The bundled models have no text tower for frames or audio, so without a bridge a text query can only
reach items through their text-ish blocks. A bridge turns the query's text vector into a unit vector
in the frames (or audio) block, trained contrastively on library items that have both.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mmrec import modalities

BRIDGE_TARGETS: tuple[str, ...] = modalities.bridge_targets()
BRIDGE_SOURCES: tuple[str, ...] = modalities.bridge_sources()


class Bridge(nn.Module):
    """``normalize(W2 gelu(W1 x))`` (``hidden > 0``) or ``normalize(W x)``: no residual, the spaces differ."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 0) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.hidden = int(in_dim), int(out_dim), int(hidden)
        if hidden > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim)
            )
        else:
            self.net = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(F.normalize(x, dim=-1)), dim=-1)

    def spec(self) -> dict[str, int]:
        """What a checkpoint needs to rebuild this bridge before loading its weights."""
        return {"in_dim": self.in_dim, "out_dim": self.out_dim, "hidden": self.hidden}


def bridges_from_spec(spec: dict[str, dict[str, int]]) -> nn.ModuleDict:
    """Empty bridges shaped as a checkpoint describes them (target modality -> spec)."""
    return nn.ModuleDict({t: Bridge(s["in_dim"], s["out_dim"], s.get("hidden", 0)) for t, s in spec.items()})
