"""Turning a hub id or a local folder into a folder on disk, without touching the network.

Models are never fetched at run time: an id must already sit in the local Hugging Face cache,
and a folder must exist and hold a ``config.json``. Anything else is a :class:`HubModelError`
that tells the user how to get the files onto this machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from encoders.hub.errors import HubModelError


def _download_hint(source: str) -> str:
    return (
        f"on a machine with network access run `huggingface-cli download {source} --local-dir <folder>`, "
        "copy the folder here and pass its path instead"
    )


@dataclass(frozen=True)
class ResolvedSource:
    """Where a model's files are, plus what identifies it in EncoderInfo."""

    folder: Path
    name: str  # hub id, or the folder's name for local folders
    revision: str  # snapshot commit for cached hub ids, "" for plain folders


def _looks_like_path(source: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else is meant as a path."""
    return (
        source.startswith((".", "~", "/"))
        or "\\" in source
        or source.count("/") > 1
        or Path(source).expanduser().exists()
    )


def resolve_source(role: str, source: str) -> ResolvedSource:
    """Find the files for ``source`` locally (folder or offline cache), or raise HubModelError."""
    if not isinstance(source, str) or not source.strip():
        raise HubModelError(role, str(source), "no model source given: pass a hub id or a local folder")
    source = source.strip()
    if _looks_like_path(source):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise HubModelError(
                role, source, f"local folder {str(folder)!r} does not exist; download the model there first"
            )
        if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
            raise HubModelError(
                role,
                source,
                f"folder {str(folder)!r} holds no config.json, so it is not a saved model; "
                "pass the folder that save_pretrained or `huggingface-cli download` wrote",
            )
        return ResolvedSource(folder=folder.resolve(), name=folder.resolve().name, revision="")
    return _resolve_cached_id(role, source)


def _resolve_cached_id(role: str, repo_id: str) -> ResolvedSource:
    """Look the id up in the local Hugging Face cache only (never the network)."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo_id=repo_id, local_files_only=True))
    except Exception as exc:  # any lookup failure means the files are not here
        raise HubModelError(
            role,
            repo_id,
            f"not found in the local Hugging Face cache ({type(exc).__name__}) and models are never "
            f"downloaded at run time; {_download_hint(repo_id)}",
        ) from exc
    return ResolvedSource(folder=folder, name=repo_id, revision=folder.name)
