#!/usr/bin/env python3
"""Evaluate the bundled comment sentiment.

English: UCI "Sentiment Labelled Sentences" (amazon, imdb, yelp). Cross-file rotation: a fresh head is
trained on two files and scored on the third, for all three rotations; then the SHIPPED head (trained on
amazon + yelp, see scripts/train_sentiment_head.py) is scored through the full analyzer on imdb, which it
never saw. Accuracy = sign agreement (sentiment > 0 means positive).

Chinese: no labelled Chinese set ships with the registries we can reach. ZH_CHECK below is a small set
of short review sentences written for this check (clear polarity, varied topics: food, films, goods,
service). It is author-written and tiny, so it only catches gross failures (wrong sign, broken snownlp
mapping); it is not an accuracy estimate. The script reports snownlp alone, the e5 head alone and the blend.

    .venv/bin/python scripts/eval_comments.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_sentiment_head import embed_cached, fit_head, load_labelled  # noqa: E402

from encoders.comments.bundled import BundledAnalyzer  # noqa: E402
from encoders.comments.sentiment import E5Embedder, blend_chinese, snownlp_polarity  # noqa: E402

FILES = ("amazon", "imdb", "yelp")
ZH_CHECK: list[tuple[str, int]] = [
    ("这家餐厅的菜非常好吃，服务也很周到。", 1),
    ("电影太精彩了，我还想再看一遍。", 1),
    ("质量很好，物超所值，推荐购买。", 1),
    ("快递很快，包装完好，非常满意。", 1),
    ("演员的表演非常出色，剧情感人。", 1),
    ("这首歌真好听，每天都在循环播放。", 1),
    ("客服态度很好，问题很快就解决了。", 1),
    ("风景美极了，下次还会再来。", 1),
    ("孩子们都很喜欢这个视频，太可爱了。", 1),
    ("手机运行流畅，拍照效果很棒。", 1),
    ("画面清晰，配乐优美，值得一看。", 1),
    ("老师讲得很清楚，学到了很多东西。", 1),
    ("这个视频太有趣了，笑死我了。", 1),
    ("价格便宜，味道也不错，会回购。", 1),
    ("非常棒的体验，强烈推荐给朋友。", 1),
    ("菜又咸又难吃，再也不来了。", 0),
    ("电影太无聊了，看了一半就睡着了。", 0),
    ("质量太差，用了两天就坏了。", 0),
    ("快递太慢，包装也破了，很失望。", 0),
    ("剧情混乱，演技尴尬，浪费时间。", 0),
    ("这首歌很难听，完全听不下去。", 0),
    ("客服态度恶劣，问题一直没解决。", 0),
    ("酒店又脏又吵，非常糟糕。", 0),
    ("视频太卡了，声音也听不清楚。", 0),
    ("手机发热严重，电池很快就没电了。", 0),
    ("画面模糊，广告太多，很烦人。", 0),
    ("讲得乱七八糟，什么都没学到。", 0),
    ("内容低俗，令人反感。", 0),
    ("价格太贵，东西却很一般，不值。", 0),
    ("非常差的体验，不推荐任何人购买。", 0),
]


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((np.asarray(scores) > 0).astype(int) == labels))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    embedder = E5Embedder()
    data = {n: load_labelled(n) for n in FILES}
    emb = {n: embed_cached(n, data[n][0], embedder) for n in FILES}
    report: dict[str, object] = {"rotation": {}}
    for test in FILES:
        train = [n for n in FILES if n != test]
        head = fit_head(np.concatenate([emb[n] for n in train]), np.concatenate([data[n][1] for n in train]))
        report["rotation"][f"train {'+'.join(train)} -> test {test}"] = round(
            accuracy(head.score(emb[test]), data[test][1]), 4
        )
    analyzer = BundledAnalyzer(embedder=embedder)
    texts, labels = data["imdb"]
    shipped = [a.sentiment for a in analyzer.analyze(texts)]
    report["shipped head, full analyzer, imdb (held out)"] = round(accuracy(np.array(shipped), labels), 4)
    zh_texts = [t for t, _ in ZH_CHECK]
    zh_labels = np.array([y for _, y in ZH_CHECK])
    e5 = analyzer.head.score(embedder.embed(zh_texts))
    snow = np.array([snownlp_polarity(t) for t in zh_texts])
    blend = np.array([blend_chinese(float(a), float(b)) for a, b in zip(e5, snow, strict=True)])
    report["zh check (30 author-written sentences)"] = {
        "snownlp": round(accuracy(snow, zh_labels), 4),
        "e5 head (trained on English)": round(accuracy(e5, zh_labels), 4),
        "blend (shipped)": round(accuracy(blend, zh_labels), 4),
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for k, v in report.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
