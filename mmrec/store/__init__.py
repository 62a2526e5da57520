"""The library store: SQLite catalog (WAL) + append-only memory-mapped vector files + manifest."""

from mmrec.errors import ModelMismatchError
from mmrec.store.library import LibraryStore
from mmrec.store.records import EncodedItem, ItemRecord
from mmrec.store.thumbnails import Thumbnail

__all__ = ["EncodedItem", "ItemRecord", "LibraryStore", "ModelMismatchError", "Thumbnail"]
