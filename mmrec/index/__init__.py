"""FAISS vector index with int64 ids, automatic index choice, filtered search and atomic saves."""

from mmrec.index.choice import DEFAULT_EXACT_THRESHOLD, DEFAULT_MEMORY_BUDGET, choose_factory
from mmrec.index.library_index import LibraryIndex
from mmrec.index.vector_index import VectorIndex, VectorIndexError

__all__ = [
    "DEFAULT_EXACT_THRESHOLD",
    "DEFAULT_MEMORY_BUDGET",
    "LibraryIndex",
    "VectorIndex",
    "VectorIndexError",
    "choose_factory",
]
