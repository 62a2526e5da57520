"""Recommendation models: collaborative filtering, the hybrid scorer, and (separately) the live recommender."""
