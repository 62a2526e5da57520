"""mmrec: understand audio/video content and recommend it.

``mmrec.Library`` is the public Python API (the CLI is a thin layer over it). It is resolved
lazily so that core modules (``mmrec.store``, ``mmrec.index``…) import without pulling in the
pipelines and models that the front layer needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mmrec.api import Library

__all__ = ["Library", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Library":
        from mmrec.api import Library

        return Library
    raise AttributeError(f"module 'mmrec' has no attribute {name!r}")
