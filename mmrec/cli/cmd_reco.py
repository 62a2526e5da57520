"""Events, comments, profiles and recommendations: ``ingest``, ``analyze``, ``profile``, ``recommend``,
``describe-user``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import click

from mmrec.cli.common import device_option, json_option, library_option, print_json
from mmrec.errors import InvalidInputError, LibraryNotFoundError


def _analyzer(profile: str, device: str) -> Any:
    from encoders.comments import load_analyzer

    return load_analyzer(profile, device=device)


def _library(path: Path) -> Any:
    from mmrec.api import Library

    if not path.is_dir():
        raise LibraryNotFoundError(str(path))
    return Library(path, create=False)


def _console() -> Any:
    from rich.console import Console

    return Console()


def analyzer_option(func: Any) -> Any:
    """``--analyzer``: which comment analyzer ``ingest`` and ``analyze`` use."""
    return click.option(
        "--analyzer",
        "analyzer_profile",
        default="bundled",
        show_default=True,
        help="Comment analyzer: bundled, hub, a hub id, a model folder or a .gguf file.",
    )(func)


@click.command("ingest")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@library_option
@json_option
@analyzer_option
@device_option
def ingest_cmd(file: Path, library: Path, as_json: bool, analyzer_profile: str, device: str) -> None:
    """Ingest an events or comments file (CSV, JSONL, Parquet; comments have a ``text`` column)."""
    from mmrec.events import EventStore, ingest, read_events
    from mmrec.profiles import refresh_profiles

    kind = read_events(
        file
    ).kind  # cheap for the sizes users ingest interactively; tells us if we need a model
    analyzer = _analyzer(analyzer_profile, device) if kind == "comments" else None
    report = ingest(library, file, analyzer)
    refreshed = 0
    if report.users and (library / "catalog.sqlite").exists():
        lib = _library(library)
        with EventStore.open(library) as events:
            refreshed = len(refresh_profiles(report.users, events, lib.store))
        lib.close()
    payload = {
        "file": str(file),
        "kind": report.kind,
        "added": report.added,
        "duplicates": report.duplicates,
        "profiles_refreshed": refreshed,
        "errors": [{"line": e.line, "field": e.field, "reason": e.reason} for e in report.errors],
    }
    if as_json:
        print_json(payload)
        return
    console = _console()
    console.print(
        f"{report.kind}: [bold]{report.added}[/] added, {report.duplicates} duplicates, "
        f"{len(report.errors)} rejected rows, {refreshed} profiles refreshed"
    )
    for e in report.errors[:50]:
        console.print(f"  [red]{file}:{e.line}[/] {e.field}: {e.reason}", highlight=False)
    if len(report.errors) > 50:
        console.print(f"  ... and {len(report.errors) - 50} more (use --json for all)")


def _texts_from(source: str) -> list[str]:
    path = Path(source)
    if not path.is_file():
        return [source]
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if "text" not in (reader.fieldnames or []):
                raise InvalidInputError(str(path), "text", "CSV has no text column")
            return [r["text"] for r in reader if (r.get("text") or "").strip()]
    if suffix in (".jsonl", ".ndjson"):
        out = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}:{n}", "row", f"invalid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise InvalidInputError(f"{path}:{n}", "text", "missing or not a string")
            out.append(obj["text"])
        return out
    raise InvalidInputError(str(path), "file", f"unsupported format {suffix!r}: use .txt, .csv or .jsonl")


@click.command("analyze")
@click.argument("source")
@json_option
@analyzer_option
@device_option
def analyze_cmd(source: str, as_json: bool, analyzer_profile: str, device: str) -> None:
    """Language, sentiment and keywords of comments: a TEXT, or a .txt (one per line), .csv or .jsonl FILE."""
    texts = _texts_from(source)
    results = [a.to_dict() for a in _analyzer(analyzer_profile, device).analyze(texts)]
    if as_json:
        print_json({"results": results})
        return
    from rich.table import Table

    table = Table("text", "lang", "sentiment", "keywords")
    for r in results:
        table.add_row(
            r["text"][:60],
            r["language"],
            f"{r['sentiment']:+.2f}",
            ", ".join(k for k, _ in r["keywords"][:5]),
        )
    _console().print(table)


def _profile_for(library: Path, user: str, collaborative: bool = False) -> Any:
    """The library, its event store and a recommender; ``collaborative`` also fits the hybrid
    scorer on the library's events (EASE + content mapping + popularity)."""
    from mmrec.events import EventStore
    from mmrec.recommend.recommender import Recommender

    lib = _library(library)
    events = EventStore.open(library)
    hybrid = interactions = None
    if collaborative:
        from mmrec.recommend.live_hybrid import fit_live_hybrid

        fitted = fit_live_hybrid(events, lib.store)
        if fitted is not None:
            hybrid, interactions = fitted
    reco = Recommender(lib.store, _LazyIndex(lib), events, hybrid=hybrid, interactions=interactions)
    return lib, events, reco


class _LazyIndex:
    """Opens the FAISS index only when a search actually runs (``profile`` never needs it)."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib

    def search(self, queries: Any, k: int, allowed_keys: Any = None) -> Any:
        return self.lib.index.search(queries, k, allowed_keys)


@click.command("profile")
@click.argument("user")
@library_option
@json_option
@click.option("--describe", "describe", default=None, help="Set the user's free-text self-description first.")
def profile_cmd(user: str, library: Path, as_json: bool, describe: str | None) -> None:
    """A user's interests (weights, keywords), negatives and modality preferences."""
    if describe is not None:
        _describe(library, user, describe)
    lib, events, reco = _profile_for(library, user)
    try:
        summary = reco.profile(user).to_summary()
    finally:
        events.close()
        lib.close()
    if as_json:
        print_json(summary)
        return
    console = _console()
    console.print(f"[bold]{user}[/]: {summary['n_events']} events, {summary['seen']} items seen")
    if summary["description"]:
        console.print(f"self-description: {summary['description']}")
    for n, i in enumerate(summary["interests"], start=1):
        console.print(
            f"  interest #{n}  weight {i['weight']:.3f}  {', '.join(i['keywords'])}  ({len(i['items'])} items)"
        )
    if summary["negatives"]:
        console.print(
            f"  negatives: {len(summary['negatives'])} clusters, disliked {len(summary['disliked'])} items"
        )
    prefs = ", ".join(f"{m} {v:.2f}" for m, v in summary["modality_prefs"].items())
    console.print(f"  modality preferences: {prefs or '-'}")


@click.command("recommend")
@click.argument("user")
@library_option
@json_option
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option(
    "--diversity",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="0 = pure relevance, 1 = maximal spread (MMR).",
)
def recommend_cmd(user: str, library: Path, as_json: bool, k: int, diversity: float) -> None:
    """Recommend items for USER from their profile (interests, negatives, self-description)."""
    lib, events, reco = _profile_for(library, user, collaborative=True)
    try:
        recs = reco.recommend(user, k=k, diversity=diversity)
    finally:
        events.close()
        lib.close()
    if as_json:
        print_json({"user": user, "k": k, "diversity": diversity, "results": [r.to_dict() for r in recs]})
        return
    from rich.table import Table

    table = Table("#", "item", "score", "why")
    for n, r in enumerate(recs, start=1):
        why = "; ".join(f"{x.kind}: {x.detail}" for x in r.reasons[:2])
        table.add_row(str(n), r.item_id, f"{r.score:.3f}", why)
    _console().print(table)


def _describe(library: Path, user: str, text: str) -> dict:
    from mmrec.events import EventStore
    from mmrec.profiles import ProfileStore, set_description

    text = text.strip()
    if not text:
        raise InvalidInputError("describe-user", "text", "the self-description is empty")
    lib = _library(library)
    try:
        vector = lib.text_query_vector(text)
    finally:
        lib.close()
    with EventStore.open(library) as events:
        store = ProfileStore(events)
        prof = set_description(store.get_or_new(user), text, vector)
        store.put(prof)
    return {"user": user, "description": text, "dim": int(vector.shape[0])}


@click.command("describe-user")
@click.argument("user")
@click.argument("text")
@library_option
@json_option
def describe_user_cmd(user: str, text: str, library: Path, as_json: bool) -> None:
    """Store USER's free-text self-description (used for cold start and as a standing interest)."""
    payload = _describe(library, user, text)
    if as_json:
        print_json(payload)
    else:
        _console().print(f"saved self-description for [bold]{user}[/] ({payload['dim']}-d query vector)")
