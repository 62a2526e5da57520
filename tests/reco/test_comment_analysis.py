"""Comment analysis on real sentences: UCI labelled reviews (held out from the shipped head) and Chinese."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from encoders.comments import CommentAnalysis, CommentAnalyzer
from encoders.comments.hub import parse_llm_reply
from encoders.comments.language import detect_language
from encoders.comments.sentiment import SentimentHead


def test_language_detection_by_script() -> None:
    assert detect_language("这部电影太好看了") == "zh"
    assert detect_language("This video was great") == "en"
    assert detect_language("这个video真不错") == "zh"
    assert detect_language("これはとても面白い動画です") == "ja"
    assert detect_language("정말 재미있어요") == "ko"
    assert detect_language("Это отличное видео") == "ru"
    assert detect_language("C'est une très bonne vidéo et je la recommande") == "fr"
    assert detect_language("12345 !!!") == "und"


def test_analyzer_implements_protocol(analyzer: CommentAnalyzer) -> None:
    assert isinstance(analyzer, CommentAnalyzer)
    out = analyzer.analyze([""])
    assert out == [CommentAnalysis(text="", language="und", sentiment=0.0, keywords=[])]


def test_english_sentiment_on_held_out_imdb(analyzer: CommentAnalyzer, sentiment_dir: Path) -> None:
    """The shipped head never saw imdb (trained on amazon + yelp): accuracy on 150 of its sentences."""
    head_meta = np.load(Path(__file__).resolve().parents[2] / "encoders/comments/assets/sentiment_head.npz")
    assert "imdb" not in str(head_meta["trained_on"])
    rows = [r for r in json.loads((sentiment_dir / "imdb.json").read_text()) if r.get("class") is not None][
        :150
    ]
    res = analyzer.analyze([r["text"] for r in rows])
    acc = np.mean([(a.sentiment > 0) == bool(r["class"]) for a, r in zip(res, rows, strict=True)])
    assert acc >= 0.85
    assert all(-1.0 <= a.sentiment <= 1.0 for a in res)
    assert all(a.language in ("en", "und") for a in res)  # "und": lines such as "10/10"


def test_english_keywords_and_sign(analyzer: CommentAnalyzer) -> None:
    pos, neg = analyzer.analyze(
        [
            "The camera quality is amazing and the screen is gorgeous.",
            "The battery life is terrible, total waste of money.",
        ]
    )
    assert pos.sentiment > 0.3 and neg.sentiment < -0.3
    assert "camera quality" in dict(pos.keywords)
    assert "battery life" in dict(neg.keywords)
    assert max(w for _, w in pos.keywords) == 1.0
    assert all(k not in ("the", "is", "and") for k, _ in pos.keywords)


@pytest.mark.parametrize(
    ("text", "sign", "keyword"),
    [
        ("这部电影太精彩了，演员的表演非常出色。", 1, "演员"),
        ("剧情无聊，画面模糊，完全是浪费时间。", -1, "剧情"),
        ("这家餐厅的菜很好吃，服务也很周到。", 1, "餐厅"),
        ("手机质量太差了，用了两天就坏了。", -1, "手机"),
        ("我喜欢猫和狗", 1, "猫"),
    ],
)
def test_chinese_sentiment_and_keywords(
    analyzer: CommentAnalyzer, text: str, sign: int, keyword: str
) -> None:
    (a,) = analyzer.analyze([text])
    assert a.language == "zh"
    assert np.sign(a.sentiment) == sign
    assert keyword in dict(a.keywords)


def test_head_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="sentiment head missing"):
        SentimentHead.load(tmp_path / "none.npz")
    np.savez(tmp_path / "bad.npz", weight=np.zeros(10, np.float32), bias=np.float32(0), model="x")
    with pytest.raises(RuntimeError, match="dim 10"):
        SentimentHead.load(tmp_path / "bad.npz")


def test_llm_reply_parsing_keeps_only_valid_fields() -> None:
    assert parse_llm_reply(
        'Sure! {"language": "EN", "sentiment": 0.8, "keywords": ["battery", 3, ""]} done'
    ) == {
        "language": "en",
        "sentiment": 0.8,
        "keywords": ["battery"],
    }
    assert parse_llm_reply('{"language": "english!", "sentiment": 7, "keywords": "x"}') == {}
    assert parse_llm_reply("I think it is positive.") == {}
    assert parse_llm_reply('{"sentiment": true} {"sentiment": -0.5}') == {}
    # What SmolLM2-135M-Instruct (GGUF) really answered: labels, a region code, a reply cut off mid-list.
    cut = '{\n  "language": "en-US",\n  "sentiment": "negative",\n  "keywords": ["battery life", "exception", "exception", "exc'
    assert parse_llm_reply(cut) == {
        "language": "en",
        "sentiment": -0.8,
        "keywords": ["battery life", "exception"],
    }
