"""Sub-commands of the ``mmrec`` console script."""
