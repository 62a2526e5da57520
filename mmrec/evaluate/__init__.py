"""Offline evaluation: metrics, splits, datasets and the protocols that tie them to mmrec's models.

Import the submodules directly (``mmrec.evaluate.protocols.run_evaluation``); this package file stays
empty so that ``mmrec.recommend`` can use the metric and split functions without an import cycle.
"""
