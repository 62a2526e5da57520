"""Typed errors shared by the core: each says what went wrong and what the user can do about it."""

from __future__ import annotations

from encoders.base import MmrecError

__all__ = [
    "IndexUnavailableError",
    "InvalidInputError",
    "ItemNotFoundError",
    "LibraryError",
    "LibraryNotFoundError",
    "MmrecError",
    "ModelMismatchError",
]


class LibraryError(MmrecError):
    """A library folder exists but cannot be used (not a library, newer schema, damaged files)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LibraryNotFoundError(LibraryError):
    """The library folder does not exist and we were asked not to create it."""

    def __init__(self, path: str, reason: str | None = None) -> None:
        super().__init__(path, reason or "no library here; create one with `mmrec encode ... --library PATH`")


class ModelMismatchError(MmrecError):
    """Vectors of two different models would be mixed in one library."""

    def __init__(self, role: str, library_model: str, requested_model: str) -> None:
        self.role = role
        self.library_model = library_model
        self.requested_model = requested_model
        super().__init__(
            f"model mismatch for role {role!r}: the library was encoded with {library_model!r} "
            f"but {requested_model!r} was requested; encode into a new library "
            "(`mmrec encode DIR --library NEW --models ...`), or delete this library folder to rebuild it"
        )


class ItemNotFoundError(MmrecError, KeyError):
    """An item id that the library does not hold."""

    def __init__(self, item_id: str) -> None:
        self.item_id = item_id
        super().__init__(f"item {item_id!r} is not in the library (see `mmrec items` for the ids it holds)")

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class InvalidInputError(MmrecError, ValueError):
    """Bad user input: names where it came from, which field, and why it was refused."""

    def __init__(self, source: str, field: str, reason: str) -> None:
        self.source = str(source)
        self.field = field
        self.reason = reason
        super().__init__(f"{self.source}: field {field!r}: {reason}")


class IndexUnavailableError(LibraryError):
    """A reader found no usable index for a library that holds items; only a writer may rebuild it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, f"{reason}; rebuild it with `mmrec reindex --library {path}`")
