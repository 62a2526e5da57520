"""The attention-fusion network: frame-set pooling, per-modality adapters, modality weights.

The output is a block-wise concatenation of ``sqrt(w_m) * normalize(adapter_m(v_m))``, so an inner
product between two fused vectors is ``sum_m sqrt(w_m w'_m) cos_m``: a weighted sum of per-modality
cosines that stays interpretable after training. Every learnable part is initialised so that the
untrained network is exactly the principled default (mean of frames, identity adapters, uniform
weights over the present modalities).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mmrec import modalities

MODALITIES: tuple[str, ...] = modalities.names()
SET_MODALITY = modalities.set_modality()


def ordered_modalities(dims: dict[str, int]) -> list[str]:
    """The fixed modality order restricted to those a model set provides (block order of fused vectors)."""
    return modalities.check_names(dims, "fusion dims")


class FramePool(nn.Module):
    """Attention pooling over a set of frame vectors with one learnable query.

    A zero query gives equal scores, i.e. the mean of the present frames: the untrained default.
    The result is order-independent because softmax pooling is a symmetric function of the set.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(dim))

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = (frames @ self.query).masked_fill(~mask, float("-inf"))
        # rows with no frame at all would be NaN; give them uniform scores, the caller masks them out
        scores = torch.where(mask.any(dim=1, keepdim=True), scores, torch.zeros_like(scores))
        attn = torch.softmax(scores, dim=1) * mask
        return F.normalize((attn.unsqueeze(-1) * frames).sum(dim=1), dim=-1)


class AttentionFusion(nn.Module):
    """Fuses per-modality vectors into one unit vector plus the modality weights used.

    ``forward(inputs, masks)``: ``inputs["frames"]`` is (B, n_max, d) with mask (B, n_max); every other
    modality is (B, d) with a presence mask (B,). Absent modalities get weight 0 and a zero block.
    """

    def __init__(self, dims: dict[str, int], hidden: int = 32) -> None:
        super().__init__()
        self.modalities = ordered_modalities(dims)
        if not self.modalities:
            raise ValueError("dims is empty: fusion needs at least one modality")
        self.dims = {m: int(dims[m]) for m in self.modalities}
        self.hidden = hidden
        self.frame_pool = FramePool(self.dims[SET_MODALITY]) if SET_MODALITY in self.dims else None
        self.adapters = nn.ModuleDict({m: nn.Linear(d, d) for m, d in self.dims.items()})
        self.scorers = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, 1))
                for m, d in self.dims.items()
            }
        )
        self.modality_bias = nn.Parameter(torch.zeros(len(self.modalities)))
        self.reset_to_default()

    @property
    def dim(self) -> int:
        return sum(self.dims.values())

    def reset_to_default(self) -> None:
        """Identity adapters, zero scorer outputs, zero frame query: the untrained default exactly."""
        with torch.no_grad():
            for m in self.modalities:
                adapter = self.adapters[m]
                assert isinstance(adapter, nn.Linear)
                adapter.weight.copy_(torch.eye(self.dims[m]))
                adapter.bias.zero_()
                last = self.scorers[m][-1]
                assert isinstance(last, nn.Linear)
                last.weight.zero_()
                last.bias.zero_()
            self.modality_bias.zero_()
            if self.frame_pool is not None:
                self.frame_pool.query.zero_()

    def adapt(self, modality: str, vectors: torch.Tensor) -> torch.Tensor:
        """One modality's (B, d) pooled vectors through its adapter, re-normalised."""
        return F.normalize(self.adapters[modality](vectors), dim=-1)

    def forward(
        self, inputs: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = _batch_size(inputs)
        blocks: list[torch.Tensor] = []
        scores: list[torch.Tensor] = []
        present: list[torch.Tensor] = []
        for m in self.modalities:
            d = self.dims[m]
            if m not in inputs:
                ref = next(iter(inputs.values()))
                blocks.append(ref.new_zeros(batch, d))
                scores.append(ref.new_zeros(batch))
                present.append(torch.zeros(batch, dtype=torch.bool, device=ref.device))
                continue
            x, mask = inputs[m], masks[m].bool()
            if m == SET_MODALITY:
                assert self.frame_pool is not None
                is_present = mask.any(dim=1)
                pooled = self.frame_pool(x, mask)
            else:
                is_present = mask
                pooled = F.normalize(x, dim=-1)
            adapted = self.adapt(m, pooled)
            blocks.append(adapted)
            scores.append(self.scorers[m](adapted).squeeze(-1))
            present.append(is_present)
        present_t = torch.stack(present, dim=1)
        logits = torch.stack(scores, dim=1) + self.modality_bias
        logits = logits.masked_fill(~present_t, float("-inf"))
        any_present = present_t.any(dim=1, keepdim=True)
        logits = torch.where(any_present, logits, torch.zeros_like(logits))
        weights = torch.softmax(logits, dim=1) * present_t
        # clamp before sqrt: d sqrt(w)/dw is infinite at 0, which would turn absent blocks' gradients to NaN
        scale = weights.clamp_min(1e-12).sqrt() * present_t
        fused = torch.cat([blk * scale[:, i : i + 1] for i, blk in enumerate(blocks)], dim=1)
        return fused, weights


def _batch_size(inputs: dict[str, torch.Tensor]) -> int:
    if not inputs:
        raise ValueError("no modality inputs were given")
    sizes = {t.shape[0] for t in inputs.values()}
    if len(sizes) != 1:
        raise ValueError(f"modality inputs disagree on batch size: {sorted(sizes)}")
    return sizes.pop()
