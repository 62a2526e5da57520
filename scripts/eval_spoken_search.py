"""Transcript -> clip search on a spoken set, per search mode and language: R@1, R@5, R@10 and MRR.

Each query is the exact sentence a clip speaks (``scripts/make_spoken_set.py``); the right answer is
that clip. The three modes go through ``Library.search`` as users call it. With ``--variants`` the
dense and lexical rankings (depth ``mmrec.search.RRF_DEPTH``) are also fused offline in other ways
(RRF constants, a lexical weight), to show how sensitive the default is.

    python scripts/make_spoken_set.py OUT
    mmrec encode OUT/clips --library LIB
    python scripts/eval_spoken_search.py --library LIB --set OUT [--variants] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmrec import Library  # noqa: E402
from mmrec.search import RRF_DEPTH, SEARCH_MODES  # noqa: E402
from mmrec.store.lexical import query_terms  # noqa: E402

HEARD = 0.5  # a clip counts as heard when its transcript holds at least this share of the sentence's words


def ranks_to_metrics(ranks: list[int | None]) -> dict[str, float]:
    """R@1/5/10 and MRR from the 1-based rank of the right item per query (None: not returned)."""
    n = max(len(ranks), 1)
    out = {f"R@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 5, 10)}
    out["MRR"] = sum(1.0 / r for r in ranks if r is not None) / n
    out["queries"] = len(ranks)
    return {k: round(v, 4) for k, v in out.items()}


def weighted_rrf(dense: list[str], lexical: list[str], k0: int, w_lex: float) -> list[str]:
    score: dict[str, float] = defaultdict(float)
    for r, item in enumerate(dense, 1):
        score[item] += 1.0 / (k0 + r)
    for r, item in enumerate(lexical, 1):
        score[item] += w_lex / (k0 + r)
    lex_rank = {item: r for r, item in enumerate(lexical, 1)}
    return sorted(score, key=lambda i: (-score[i], lex_rank.get(i, len(lexical) + 1), i))


def convex(dense: list[tuple[str, float]], lexical: list[tuple[str, float]], alpha: float) -> list[str]:
    """A weighted sum of normalised scores (dense min-max over its list, bm25 over its best): unlike
    RRF it keeps the margin by which one side prefers its first item."""
    score: dict[str, float] = defaultdict(float)
    if dense:
        hi, lo = dense[0][1], dense[-1][1]
        for item, x in dense:
            score[item] += (1 - alpha) * ((x - lo) / (hi - lo) if hi > lo else 1.0)
    if lexical and lexical[0][1] > 0:
        for item, x in lexical:
            score[item] += alpha * x / lexical[0][1]
    return sorted(score, key=lambda i: (-score[i], i))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument(
        "--set", type=Path, required=True, help="the spoken set folder (queries.csv, transcripts.csv)"
    )
    parser.add_argument("--variants", action="store_true", help="also fuse the two rankings in other ways")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with open(args.set / "transcripts.csv", encoding="utf-8") as fh:
        language = {row["file"]: row["language"] for row in csv.DictReader(fh)}
    with open(args.set / "queries.csv", encoding="utf-8") as fh:
        queries = [(row["query"], row["item_id"]) for row in csv.DictReader(fh)]

    lib = Library(args.library, create=False, device="cpu")
    transcripts = {r.item_id: str((r.metadata or {}).get("transcript") or "") for r in lib.store.items()}
    heard = {i: bool(t) for i, t in transcripts.items()}

    def heard_well(text: str, item_id: str) -> bool:
        """Whether the recogniser got at least HEARD of the sentence's words (same tokenising as search)."""
        want = set(query_terms(text))
        got = set(query_terms(transcripts.get(item_id, "")))
        return bool(want) and len(want & got) / len(want) >= HEARD

    ranks: dict[str, dict[str, list[int | None]]] = {m: defaultdict(list) for m in SEARCH_MODES}
    rankings: list[tuple[str, str, list[tuple[str, float]], list[tuple[str, float]]]] = []
    started = time.perf_counter()
    for text, item_id in queries:
        lang = language.get(item_id, "?")
        for mode in SEARCH_MODES:
            ids = [h.item_id for h in lib.search(text, k=10, mode=mode).results]
            rank = ids.index(item_id) + 1 if item_id in ids else None
            ranks[mode][lang].append(rank)
            ranks[mode]["all"].append(rank)
            if heard_well(text, item_id):
                ranks[mode][f"{lang}-heard"].append(rank)
        if args.variants:
            dense = [(h.item_id, h.score) for h in lib.search(text, k=RRF_DEPTH, mode="dense").results]
            lexical = [(h.item_id, h.score) for h in lib.search(text, k=RRF_DEPTH, mode="lexical").results]
            rankings.append((lang, item_id, dense, lexical))
    elapsed = time.perf_counter() - started

    report: dict[str, object] = {
        "library": str(args.library),
        "queries": len(queries),
        "clips_with_a_transcript": {
            lang: f"{sum(heard.get(i, False) for i, l2 in language.items() if l2 == lang)}/"
            f"{sum(1 for l2 in language.values() if l2 == lang)}"
            for lang in sorted(set(language.values()))
        },
        "heard_note": f"<lang>-heard: queries whose clip's transcript holds >= {HEARD:.0%} of the sentence's words",
        "modes": {
            m: {lang: ranks_to_metrics(r) for lang, r in sorted(ranks[m].items())} for m in SEARCH_MODES
        },
        "seconds": round(elapsed, 1),
    }
    if args.variants:
        variants: dict[str, dict[str, dict[str, float]]] = {}
        fusions = {
            f"rrf k={k0} lexical weight {w}": (
                lambda d, lx, k0=k0, w=w: weighted_rrf([i for i, _ in d], [i for i, _ in lx], k0, w)
            )
            for k0 in (10, 60)
            for w in (1.0, 2.0, 3.0)
        }
        fusions |= {
            f"convex lexical share {a}": (lambda d, lx, a=a: convex(d, lx, a)) for a in (0.4, 0.6, 0.8)
        }
        for name, fuse in fusions.items():
            by_lang: dict[str, list[int | None]] = defaultdict(list)
            for lang, item_id, dense, lexical in rankings:
                fused = fuse(dense, lexical)[:10]
                rank = fused.index(item_id) + 1 if item_id in fused else None
                by_lang[lang].append(rank)
                by_lang["all"].append(rank)
            variants[name] = {lang: ranks_to_metrics(r) for lang, r in sorted(by_lang.items())}
        report["variants"] = variants
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    print(f"{report['queries']} queries; clips with a transcript: {report['clips_with_a_transcript']}")
    print(report["heard_note"])
    print(f"{'mode':<34} {'lang':<8} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR':>6} {'n':>4}")
    rows = [(m, v) for m, v in report["modes"].items()]  # type: ignore[union-attr]
    rows += list(report.get("variants", {}).items())  # type: ignore[union-attr]
    for name, by_lang in rows:
        for lang, m in by_lang.items():
            print(
                f"{name:<34} {lang:<8} {m['R@1']:>6.3f} {m['R@5']:>6.3f} {m['R@10']:>6.3f} {m['MRR']:>6.3f} "
                f"{int(m['queries']):>4}"
            )
    print(f"({report['seconds']} s for {len(queries)} queries x {len(SEARCH_MODES)} modes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
