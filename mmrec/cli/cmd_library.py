"""``mmrec info``, ``items``, ``search``, ``similar`` and ``reindex``: reading and maintaining a library."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from mmrec.cli.common import device_option, json_option, library_option, print_json
from mmrec.search import SEARCH_MODES, MatchInfo, SearchFilters, SearchResponse

if TYPE_CHECKING:
    from mmrec.api import Library

console = Console()


def _open(library: Path, device: str = "auto", models: str | None = None) -> Library:
    from mmrec.api import Library

    return Library(library, models=models, device=device, create=False)


def filter_options(func: Any) -> Any:
    """``--kind``, ``--min-duration`` and ``--tag`` narrow any query."""
    func = click.option("--tag", default=None, help="Only items carrying this tag.")(func)
    func = click.option(
        "--min-duration", type=float, default=None, help="Only items at least this long (s)."
    )(func)
    func = click.option(
        "--kind", type=click.Choice(["video", "audio", "image", "text"]), default=None, help="Only this kind."
    )(func)
    return click.option(
        "-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Results."
    )(func)


def _print_results(response: SearchResponse) -> None:
    table = Table(show_lines=False, title=f"query: {response.query}")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("item")
    table.add_column("kind")
    table.add_column("title")
    table.add_column("why (per-modality contribution)")
    matched = any(hit.matched is not None for hit in response.results)
    if matched:
        table.add_column("matched (dense/lexical rank: words)")
    for rank, hit in enumerate(response.results, 1):
        parts = sorted(hit.contributions.items(), key=lambda kv: -kv[1])
        why = ", ".join(f"{m} {v:.2f}" for m, v in parts[:3])
        row = [str(rank), f"{hit.score:.3f}", hit.item_id, hit.kind, hit.title[:50], why]
        if matched:
            row.append(_matched_text(hit.matched))
        table.add_row(*row)
    console.print(table)
    if not response.results:
        console.print("no results (is the library empty, or are the filters too narrow?)")
    if note := response.query.get("lexical"):
        console.print(f"lexical side {note}", markup=False)


def _matched_text(m: MatchInfo | None) -> str:
    """``d3 l1: title decker`` - which side ranked the item where, and the words it matched."""
    if m is None:
        return ""
    ranks = " ".join(
        f"{side}{r}" for side, r in (("d", m.dense_rank), ("l", m.lexical_rank)) if r is not None
    )
    words = "; ".join(f"{f} {' '.join(ws[:5])}" for f, ws in m.words.items())
    return f"{ranks}: {words}" if words else ranks


@click.command("info")
@library_option
@json_option
@click.option("--failures", is_flag=True, help="List every failed file with its reason.")
def info(library: Path, as_json: bool, failures: bool) -> None:
    """Counts, failures, models, fusion and index of a library."""
    lib = _open(library)
    data = lib.info().to_dict()
    if failures:
        data["failures"] = [f.to_dict() for f in lib.failures()]
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]library[/bold] {data['library']}")
    for key, value in data.items():
        if key in ("library", "failures", "manifest") or (key == "index_error" and value is None):
            continue
        if key == "hubness" and value is not None:
            console.print(
                f"  hubness: the most frequent item ({value['top_item']}) is in {value['max_occurrence']} of "
                f"{value['sample']} top-{value['k']} lists ({value['max_share']:.0%}); k-occurrence skewness "
                f"{value['skewness']:.2f} (sample of {value['sample']} of {value['items']} items)"
            )
            continue
        console.print(f"  {key}: {value}")
    if failures:
        table = Table(title=f"{len(data['failures'])} failed files")
        table.add_column("file")
        table.add_column("reason")
        for row in data["failures"]:
            table.add_row(row["path"], row["reason"])
        console.print(table)


@click.command("search")
@click.argument("text")
@filter_options
@click.option(
    "--mode",
    type=click.Choice(SEARCH_MODES),
    default="hybrid",
    show_default=True,
    help="hybrid: meaning and exact words, fused by rank; dense: meaning only; lexical: exact words only.",
)
@library_option
@device_option
@json_option
def search(
    text: str, k: int, kind: str | None, min_duration: float | None, tag: str | None, mode: str,
    library: Path, device: str, as_json: bool,
) -> None:  # fmt: skip
    """Find items matching TEXT (English or Chinese): titles, descriptions, tags, transcripts, visual tags."""
    filters = SearchFilters(kind, min_duration, tag)
    response = _open(library, device).search(text, k=k, filters=filters, mode=mode)
    print_json(response.to_dict()) if as_json else _print_results(response)


@click.command("similar")
@click.argument("query")
@filter_options
@library_option
@device_option
@json_option
def similar(
    query: str, k: int, kind: str | None, min_duration: float | None, tag: str | None,
    library: Path, device: str, as_json: bool,
) -> None:  # fmt: skip
    """Items similar to QUERY: an item id, a library file, or any media file (encoded on the fly)."""
    response = _open(library, device).similar(query, k=k, filters=SearchFilters(kind, min_duration, tag))
    print_json(response.to_dict()) if as_json else _print_results(response)


@click.command("items")
@library_option
@json_option
@click.option(
    "--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Skip this many items."
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Items per page.")
@click.option(
    "--kind", type=click.Choice(["video", "audio", "image", "text"]), default=None, help="Only this kind."
)
@click.option("--tag", default=None, help="Only items carrying this tag.")
def items(library: Path, as_json: bool, offset: int, limit: int, kind: str | None, tag: str | None) -> None:
    """List the library's item ids (the ids ``similar``, ``recommend`` and the server use), a page at a time."""
    page = _open(library).items(offset=offset, limit=limit, filters=SearchFilters(kind=kind, tag=tag))
    if as_json:
        print_json(page.to_dict())
        return
    table = Table(title=f"items {offset + 1}-{offset + len(page.items)} of {page.total}")
    for col in ("item", "kind", "duration", "title"):
        table.add_column(col)
    for item in page.items:
        duration = "" if item.duration_s is None else f"{item.duration_s:.1f} s"
        table.add_row(item.item_id, item.kind, duration, item.title[:60])
    console.print(table)


@click.command("reindex")
@library_option
@json_option
@click.option(
    "--factory",
    default=None,
    help='FAISS factory string, e.g. "HNSW32,Flat", or "ondisk:IVF4096,PQ64" for memory-mapped shard '
    "files (indexes larger than RAM); default: automatic by size and free memory, printed.",
)
def reindex(library: Path, as_json: bool, factory: str | None) -> None:
    """Rebuild the FAISS index from the stored fused vectors."""
    info = _open(library).reindex(factory=factory)
    if as_json:
        print_json(info.to_dict())
        return
    size = f"{info.bytes / 2**20:.1f} MiB resident" if info.bytes is not None else "size unknown"
    console.print(
        f"index rebuilt: {info.factory}, {info.ntotal} vectors of {info.dim} dims, {size}", markup=False
    )
    console.print(f"  why: {info.choice or 'the factory you named'}", markup=False)
    for key, value in sorted(info.extra.items()):
        console.print(f"  {key}: {value}", markup=False)
