"""Attention fusion of per-modality vectors into one interpretable unit vector per item."""

from mmrec.fusion.batching import FusionInputError
from mmrec.fusion.bridges import BRIDGE_SOURCES, BRIDGE_TARGETS, Bridge
from mmrec.fusion.fusion import DEFAULT_VERSION, Fusion, pick_device
from mmrec.fusion.library_training import train_library_fusion
from mmrec.fusion.model import MODALITIES, AttentionFusion, ordered_modalities
from mmrec.fusion.training import train_fusion

__all__ = [
    "BRIDGE_SOURCES",
    "BRIDGE_TARGETS",
    "DEFAULT_VERSION",
    "MODALITIES",
    "AttentionFusion",
    "Bridge",
    "Fusion",
    "FusionInputError",
    "ordered_modalities",
    "pick_device",
    "train_fusion",
    "train_library_fusion",
]
