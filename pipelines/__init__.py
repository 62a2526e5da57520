"""Pipelines: move media and events through encoders into the mmrec core."""
