#!/usr/bin/env python3
"""Train the bundled comment-sentiment head: logistic regression on multilingual-e5-small embeddings.

Data: UCI "Sentiment Labelled Sentences" (amazon, imdb, yelp; 1,000 each, fetched by scripts/fetch_data.py).
The shipped head is trained on ``--train`` files only (default amazon + yelp) so that the remaining file
(imdb) stays an honest held-out test set for ``scripts/eval_comments.py``.

    .venv/bin/python scripts/train_sentiment_head.py [--train amazon yelp] [--out encoders/comments/assets/sentiment_head.npz]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from encoders.cache import cache_root, data_root
from encoders.comments.sentiment import HEAD_PATH, E5Embedder, SentimentHead

DATA = data_root() / "sentiment"
CACHE = cache_root() / "embeddings"


def load_labelled(name: str) -> tuple[list[str], np.ndarray]:
    """Sentences and 0/1 labels of one UCI file; entries whose class is null are dropped."""
    rows = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    rows = [r for r in rows if r.get("class") is not None and str(r.get("text", "")).strip()]
    return [str(r["text"]) for r in rows], np.array([int(r["class"]) for r in rows], dtype=np.int64)


def embed_cached(name: str, texts: list[str], embedder: E5Embedder | None = None) -> np.ndarray:
    """e5 embeddings of a labelled file, cached on disk (3,000 sentences take about a minute on 2 cores)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"sentiment-{name}-e5q.npy"
    if path.exists():
        cached = np.load(path)
        if cached.shape[0] == len(texts):
            return cached
    emb = (embedder or E5Embedder()).embed(texts)
    np.save(path, emb)
    return emb


def fit_head(x: np.ndarray, y: np.ndarray, c: float = 4.0) -> SentimentHead:
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit(x, y)
    return SentimentHead(
        weight=clf.coef_[0].astype(np.float32), bias=float(clf.intercept_[0]), model=E5Embedder.model_name
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", nargs="+", default=["amazon", "yelp"])
    ap.add_argument("--c", type=float, default=4.0, help="inverse L2 regularisation strength")
    ap.add_argument("--out", type=Path, default=HEAD_PATH)
    args = ap.parse_args()
    embedder = E5Embedder()
    xs, ys = [], []
    for name in args.train:
        texts, labels = load_labelled(name)
        xs.append(embed_cached(name, texts, embedder))
        ys.append(labels)
    head = fit_head(np.concatenate(xs), np.concatenate(ys), args.c)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out, trained_on=",".join(args.train), c=str(args.c))
    print(f"saved {args.out} ({args.out.stat().st_size} bytes), trained on {args.train}")


if __name__ == "__main__":
    main()
