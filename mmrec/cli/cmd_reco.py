"""Events, comments, profiles and recommendations: ``ingest``, ``analyze``, ``profile``, ``recommend``,
``describe-user``, ``refit``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mmrec.cli.common import device_option, json_option, library_option, print_json
from mmrec.errors import InvalidInputError, LibraryNotFoundError

if TYPE_CHECKING:
    from mmrec.api import Library


def _library(path: Path, device: str = "auto") -> Library:
    from mmrec.api import Library

    if not path.is_dir():
        raise LibraryNotFoundError(str(path))
    return Library(path, device=device, create=False)


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
@click.option(
    "--encoding",
    default=None,
    help="Text encoding of a CSV/JSONL file that is not UTF-8/16/32, e.g. latin-1 or cp1252 "
    "(default: UTF-8, or what a byte-order mark says).",
)
def ingest_cmd(
    file: Path, library: Path, as_json: bool, analyzer_profile: str, device: str, encoding: str | None
) -> None:
    """Ingest an events or comments file (CSV, JSONL, Parquet; comments have a ``text`` column)."""
    lib = _library(library, device)
    try:
        report = lib.ingest(file, analyzer=analyzer_profile, encoding=encoding)
    finally:
        lib.close()
    refreshed = report.profiles_updated
    payload = {
        "file": str(file),
        "kind": report.kind,
        "added": report.added,
        "duplicates": report.duplicates,
        "profiles_refreshed": refreshed,
        "errors": [{"line": e.line, "field": e.field, "reason": e.reason} for e in report.errors],
        "warnings": [{"line": w.line, "field": w.field, "reason": w.reason} for w in report.warnings],
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
    for w in report.warnings[:50]:
        console.print(f"  [yellow]{file}:{w.line}[/] {w.field}: {w.reason}", highlight=False)
    if len(report.warnings) > 50:
        console.print(f"  ... and {len(report.warnings) - 50} more warnings (use --json for all)")


def _texts_from(source: str) -> list[str]:
    path = Path(source)
    if not path.is_file():
        return [source]
    try:
        return _read_texts(path)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            str(path),
            "file",
            f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save it as UTF-8",
        ) from None


def _read_texts(path: Path) -> list[str]:
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
    from mmrec.api import analyze_texts

    texts = _texts_from(source)
    results = [a.to_dict() for a in analyze_texts(texts, analyzer_profile, device)]
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


@click.command("profile")
@click.argument("user")
@library_option
@json_option
@click.option("--describe", "describe", default=None, help="Set the user's free-text self-description first.")
def profile_cmd(user: str, library: Path, as_json: bool, describe: str | None) -> None:
    """A user's interests (weights, keywords), negatives and modality preferences."""
    lib = _library(library)
    try:
        if describe is not None:
            lib.describe_user(user, describe)
        summary = lib.profile(user).to_dict()
    finally:
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
@click.option(
    "--explore",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Share of the k slots given to exploring under-explored clusters (0 = off); "
    "those results carry an 'explore' reason.",
)
def recommend_cmd(user: str, library: Path, as_json: bool, k: int, diversity: float, explore: float) -> None:
    """Recommend items for USER from their profile (interests, negatives, self-description)."""
    lib = _library(library)
    try:
        recs = lib.recommend(user, k=k, diversity=diversity, explore=explore or None).results
    finally:
        lib.close()
    if as_json:
        payload = {"user": user, "k": k, "diversity": diversity, "explore": explore}
        print_json({**payload, "results": [r.to_dict() for r in recs]})
        return
    from rich.table import Table

    table = Table("#", "item", "score", "why")
    for n, r in enumerate(recs, start=1):
        # An exploring slot says so first: the user should see why an unusual item is there.
        shown = sorted(r.reasons, key=lambda x: x.kind != "explore")[:2]
        why = "; ".join(f"{x.kind}: {x.detail}" for x in shown)
        table.add_row(str(n), r.item_id, f"{r.score:.3f}", why)
    _console().print(table)


@click.command("describe-user")
@click.argument("user")
@click.argument("text")
@library_option
@json_option
def describe_user_cmd(user: str, text: str, library: Path, as_json: bool) -> None:
    """Store USER's free-text self-description (used for cold start and as a standing interest)."""
    lib = _library(library)
    try:
        payload = lib.describe_user(user, text).to_dict()
    finally:
        lib.close()
    if as_json:
        print_json(payload)
    else:
        _console().print(f"saved self-description for [bold]{user}[/] ({payload['dim']}-d query vector)")


@click.command("refit")
@library_option
@json_option
@click.option(
    "--server",
    default=None,
    metavar="URL",
    help="Ask a running `mmrec serve` (e.g. http://127.0.0.1:8000) to refit its own model instead of "
    "fitting in this process.",
)
@click.option(
    "--api-key",
    envvar="MMREC_API_KEY",
    default=None,
    help="The server's API key (with --server). [env: MMREC_API_KEY]",
)
def refit_cmd(library: Path, as_json: bool, server: str | None, api_key: str | None) -> None:
    """Fit the collaborative model again on every stored event (cron it, or run it after a bulk
    ingest). New events are folded in at once without it; a refit also learns from them how items
    relate and gives new items a column. The model lives in memory only, so a running server on
    this library fits again in the background on its next request; --server asks it directly."""
    if server is not None:
        payload = _refit_on_server(server, api_key)
    else:
        lib = _library(library)
        try:
            payload = lib.refit().to_dict()
        finally:
            lib.close()
    if as_json:
        print_json(payload)
        return
    if not payload["fitted"]:
        click.echo(f"nothing to fit in {payload['library']}: no item has a positive event")
        return
    click.echo(
        f"refitted the collaborative model of {payload['library']} in {payload['seconds']:.2f} s: "
        f"{payload['users']} users, {payload['items']} items, {payload['interactions']} interactions "
        f"from {payload['events']} events ({payload['pending_events']} folded in since the last fit here)"
    )
    click.echo(
        f"  version {payload['version_before'] or '-'} -> {payload['version']}; "
        f"refit #{payload['refits_recorded']} recorded: servers on this library refit on their next request"
    )


def _refit_on_server(server: str, api_key: str | None) -> dict[str, Any]:
    """POST /api/refit to a running server; its errors come back as one MmrecError naming --server."""
    import urllib.error
    import urllib.request

    url = server.rstrip("/") + "/api/refit"
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError("--server", "server", f"{server!r} is not an http(s) URL")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=3600) as response:
            return dict(json.loads(response.read().decode("utf-8")))
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read().decode("utf-8"))["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise InvalidInputError("--server", "server", f"{url} answered {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InvalidInputError("--server", "server", f"cannot reach {url}: {reason}") from None
