"""mmrec core."""
