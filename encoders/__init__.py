"""Adapters around pretrained models and the media decoding they need.

This package imports nothing from ``mmrec`` or ``pipelines``: it turns decoded media and
text into vectors and records, and knows nothing of libraries, indexes or users.
"""
