"""Lexical search: an SQLite FTS5 table inside ``catalog.sqlite`` over each ok item's own words.

People searching titles, names and spoken words expect an exact word to find its item; a dense
embedding only finds what is *near* in meaning, and misses rare names. So every ok item also has a
row in ``items_fts`` (rowid = item key) with one column per field: title, description, user tags,
transcript, and the frame classifier's visual tags, so a hit can say which words matched where.

Tokenising: FTS5's ``unicode61`` splits on anything that is not a letter or digit, lower-cases and
folds diacritics, and ``porter`` stems English ("running" finds "run"). It cannot split Chinese,
which has no spaces, so runs of Han characters are segmented first with jieba's search-engine mode
(``cut_for_search``: words plus their shorter parts, so "消防车" also finds "消防") and stored
space-separated. Queries go through the same two steps, and their terms are OR-ed: a sentence that
a recogniser heard slightly wrong still finds its clip, and bm25 ranks the clip with most (rare)
words first.

The table is kept in step with ``items`` by the very transactions that change items
(``LibraryStore.commit_items``/``delete_items`` call :func:`sync_keys`), so a kill leaves both or
neither. A library made before the table existed is read without it (readers never write); the
first writer creates and fills it in its own transaction (:func:`ensure`).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from mmrec.store import catalog as cat
from mmrec.store.records import ItemRecord

TABLE = cat.LEXICAL_TABLE
FIELDS: tuple[str, ...] = ("title", "description", "tags", "transcript", "vtags")
# bm25 column weights: what a user names an item by counts most; machine labels least (they are
# guesses of an ImageNet classifier). Chosen, not tuned.
FIELD_WEIGHTS: dict[str, float] = {
    "title": 2.0,
    "description": 1.0,
    "tags": 1.5,
    "transcript": 1.0,
    "vtags": 0.5,
}
MAX_QUERY_TERMS = 64  # a pasted paragraph is still one bounded query
# Articles and a few particles, left out of queries (stored text keeps them). Deliberately short:
# negations and auxiliaries ("did not like") are what tells two spoken sentences apart.
FUNCTION_WORDS = frozenset(["a", "an", "the", "of", "to", "and", "or", "的", "了"])
# Chinese has no articles; a numeral or demonstrative with a measure word does their work ("一只狗",
# "a dog"; "这个苹果", "this apple"), so such a word is left out of queries like "a" and "the" are.
_MEASURE_PHRASE = re.compile(r"^[一二两三四五六七八九十几这那每某][个只条头张匹辆本件位把座棵朵片块双对]$")

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+")
_TERM = re.compile(r"[^\W_]+")  # what unicode61 keeps as a token (letters and digits)
_MARK_OPEN, _MARK_CLOSE = "\x02", "\x03"
_MARKED = re.compile(f"{_MARK_OPEN}(.*?){_MARK_CLOSE}", re.S)
_BM25 = "bm25({t}, {w})".format(t=TABLE, w=", ".join(str(FIELD_WEIGHTS[f]) for f in FIELDS))


@dataclass(frozen=True)
class LexicalMatch:
    """One item the words found: its key, bm25 relevance (higher is better) and 1-based rank."""

    key: int
    score: float
    rank: int


@dataclass
class LexicalDiff:
    """How the full-text rows disagree with the catalog (``mmrec check``)."""

    table_present: bool
    missing: list[int] = field(default_factory=list)  # ok items without a row
    extra: list[int] = field(default_factory=list)  # rows for keys that are gone or failed
    stale: list[int] = field(default_factory=list)  # rows whose text is not the item's text now
    damaged: str | None = None  # FTS5's own integrity check failed (its index is unreadable)

    @property
    def ok(self) -> bool:
        return self.table_present and not (self.missing or self.extra or self.stale or self.damaged)


# ====================================================================== tokenising
def _jieba_cut(text: str) -> list[str]:
    import jieba

    jieba.setLogLevel(60)  # its dictionary-loading chatter goes to stderr otherwise
    return list(jieba.cut_for_search(text))


def segment(text: str, stored: bool = False) -> str:
    """Text as FTS5 should see it: Han runs cut into words (jieba search mode), the rest unchanged.

    ``stored`` (item text, not a query) also adds the single characters of each longer Chinese
    word, so a one-character query ("猫") finds "小猫"; a query keeps its words only, so "一只狗"
    does not turn into a match on every "一". jieba is only imported (its dictionary takes about
    1.5 s to load) when the text holds Chinese.
    """
    if not text or not _HAN.search(text):
        return text or ""
    out: list[str] = []
    last = 0
    for m in _HAN.finditer(text):
        words = [w for w in _jieba_cut(m.group()) if w.strip()]
        if stored:
            words += list(dict.fromkeys(c for w in words if len(w) > 1 for c in w))
        out.append(text[last : m.start()])
        out.append(" " + " ".join(words) + " ")
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def item_texts(rec: ItemRecord) -> dict[str, str]:
    """The raw words of an item per field: what lexical search reads (and what check compares)."""
    meta = rec.metadata or {}
    transcript = meta.get("transcript")
    vtags = meta.get("visual_tags") or []
    labels = [str(t[0]) for t in vtags if isinstance(t, list | tuple) and t]
    return {
        "title": rec.title or "",
        "description": rec.description or "",
        "tags": ", ".join(str(t) for t in rec.tags),
        "transcript": transcript if isinstance(transcript, str) else "",
        "vtags": ", ".join(labels),
    }


def item_row(rec: ItemRecord) -> tuple[str, ...]:
    """The segmented column values stored for an item, in ``FIELDS`` order."""
    texts = item_texts(rec)
    return tuple(segment(texts[f], stored=True) for f in FIELDS)


def query_terms(text: str) -> list[str]:
    """A query's distinct terms, tokenised as the stored text is (FTS5 stems them in turn).

    Articles and the like ("a", "the", "的", "一只") are dropped unless nothing else is left: with OR-ed terms,
    "a fire truck" would otherwise match every title that starts with "A", and hand those items
    a lexical rank in hybrid search.
    """
    terms = list(dict.fromkeys(t.lower() for t in _TERM.findall(segment(text))))
    content = [t for t in terms if t not in FUNCTION_WORDS and not _MEASURE_PHRASE.match(t)]
    return (content or terms)[:MAX_QUERY_TERMS]


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 query that matches any of the terms (each quoted: no operator is read from user text)."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


# ====================================================================== keeping in step (writers)
def has_table(conn: sqlite3.Connection) -> bool:
    """Whether the catalog has the full-text table (a library made before it has not)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)).fetchone()
    return row is not None


def ensure(conn: sqlite3.Connection) -> bool:
    """Writers only, inside their transaction: create and fill the table when missing; True if it did."""
    if has_table(conn):
        return False
    conn.execute(cat.LEXICAL_DDL)
    _fill(conn)
    return True


def rebuild(conn: sqlite3.Connection) -> int:
    """Writers only, inside their transaction: drop and rebuild every row from the catalog (repair).

    Dropping rather than deleting rows also clears an FTS index whose structure is damaged.
    Returns the number of rows written.
    """
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(cat.LEXICAL_DDL)
    return _fill(conn)


def sync_keys(conn: sqlite3.Connection, keys: Sequence[int]) -> None:
    """Writers only, inside the transaction that changed these items: make their rows match the
    catalog (an ok item gets its current words, a failed or deleted one no row)."""
    if ensure(conn):
        return  # just filled from the catalog as it stands in this transaction
    keys = list(dict.fromkeys(int(k) for k in keys))
    for part in cat.chunks(keys):
        marks = ",".join("?" * len(part))
        conn.execute(f"DELETE FROM {TABLE} WHERE rowid IN ({marks})", part)
        rows = conn.execute(
            f"SELECT {cat.ITEM_COLUMNS} FROM items WHERE key IN ({marks}) AND status='ok'", part
        ).fetchall()
        _insert(conn, (cat.record_from_row(r) for r in rows))


def _fill(conn: sqlite3.Connection) -> int:
    n, last = 0, -1
    while True:
        rows = conn.execute(
            f"SELECT {cat.ITEM_COLUMNS} FROM items WHERE key > ? AND status='ok' ORDER BY key LIMIT 1000",
            (last,),
        ).fetchall()
        if not rows:
            return n
        n += _insert(conn, (cat.record_from_row(r) for r in rows))
        last = int(rows[-1][0])


def _insert(conn: sqlite3.Connection, records: Iterator[ItemRecord]) -> int:
    values = [(int(rec.key or 0), *item_row(rec)) for rec in records]
    conn.executemany(
        f"INSERT INTO {TABLE}(rowid, {', '.join(FIELDS)}) VALUES (?, {', '.join('?' * len(FIELDS))})",
        values,
    )
    return len(values)


# ====================================================================== reading
def search(
    conn: sqlite3.Connection, text: str, limit: int, allowed: Callable[[int], bool] | None = None
) -> list[LexicalMatch]:
    """Items whose words match the query, best bm25 first, at most ``limit`` passing ``allowed``.

    Raises ``sqlite3.OperationalError`` ("no such table") on a library without the table; the
    store turns that into an error that says how to build it.
    """
    terms = query_terms(text)
    if not terms or limit <= 0:
        return []
    cursor = conn.execute(
        f"SELECT rowid, {_BM25} AS score FROM {TABLE} WHERE {TABLE} MATCH ? ORDER BY score",
        (match_expression(terms),),
    )
    found: list[LexicalMatch] = []
    try:
        for key, score in cursor:
            if allowed is not None and not allowed(int(key)):
                continue
            # FTS5's bm25 is negative (more negative is better); report it as a positive relevance
            found.append(LexicalMatch(int(key), round(-float(score), 6), len(found) + 1))
            if len(found) >= limit:
                break
    finally:
        cursor.close()
    return found


def matched_words(
    conn: sqlite3.Connection, text: str, keys: Sequence[int]
) -> dict[int, dict[str, list[str]]]:
    """Per key, the stored words of each field that the query matched (FTS5's ``highlight``);
    keys the query does not match are left out."""
    terms = query_terms(text)
    keys = [int(k) for k in keys]
    if not terms or not keys:
        return {}
    cols = ", ".join(f"highlight({TABLE}, {i}, ?, ?)" for i in range(len(FIELDS)))
    marks = ",".join("?" * len(keys))
    params: list[object] = [x for _ in FIELDS for x in (_MARK_OPEN, _MARK_CLOSE)]
    out: dict[int, dict[str, list[str]]] = {}
    for row in conn.execute(
        f"SELECT rowid, {cols} FROM {TABLE} WHERE {TABLE} MATCH ? AND rowid IN ({marks})",
        [*params, match_expression(terms), *keys],
    ):
        words: dict[str, list[str]] = {}
        for name, value in zip(FIELDS, row[1:], strict=True):
            found = [w.lower() for span in _MARKED.findall(value or "") for w in span.split()]
            if found:
                words[name] = list(dict.fromkeys(found))
        out[int(row[0])] = words
    return out


def diff(conn: sqlite3.Connection) -> LexicalDiff:
    """Compare every full-text row with the catalog's ok items (keys and segmented text)."""
    if not has_table(conn):
        return LexicalDiff(table_present=False)
    result = LexicalDiff(table_present=True)
    try:
        conn.execute("SAVEPOINT lexical_check")
        try:  # reads only; inside a savepoint that is rolled back all the same
            conn.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES ('integrity-check')")
        finally:
            conn.execute("ROLLBACK TO lexical_check")
            conn.execute("RELEASE lexical_check")
    except sqlite3.DatabaseError as exc:
        result.damaged = str(exc)
        return result
    cols = ", ".join(FIELDS)
    stored = {int(r[0]): tuple(r[1:]) for r in conn.execute(f"SELECT rowid, {cols} FROM {TABLE}")}
    seen: set[int] = set()
    last = -1
    while True:
        rows = conn.execute(
            f"SELECT {cat.ITEM_COLUMNS} FROM items WHERE key > ? AND status='ok' ORDER BY key LIMIT 1000",
            (last,),
        ).fetchall()
        if not rows:
            break
        for r in rows:
            rec = cat.record_from_row(r)
            key = int(r[0])
            seen.add(key)
            have = stored.get(key)
            if have is None:
                result.missing.append(key)
            elif tuple(x or "" for x in have) != item_row(rec):
                result.stale.append(key)
        last = int(rows[-1][0])
    result.extra = sorted(set(stored) - seen)
    return result
