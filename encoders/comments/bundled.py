"""The offline analyzer: script-based language, e5 head (+ snownlp for Chinese), jieba/RAKE keywords."""

from __future__ import annotations

from collections.abc import Sequence

from encoders.comments.keywords import extract_keywords
from encoders.comments.language import detect_language
from encoders.comments.sentiment import (
    E5Embedder,
    SentimentHead,
    blend_chinese,
    shared_embedder,
    snownlp_polarity,
)
from encoders.comments.types import CommentAnalysis


class BundledAnalyzer:
    """Everything ships in installed packages; analyses a batch with one e5 call."""

    name = "bundled:e5-head+snownlp+jieba+rake"

    def __init__(self, head: SentimentHead | None = None, embedder: E5Embedder | None = None) -> None:
        self.head = head or SentimentHead.load()
        self._embedder = embedder

    @property
    def embedder(self) -> E5Embedder:
        if self._embedder is None:
            self._embedder = shared_embedder()
        return self._embedder

    def sentiments(self, texts: Sequence[str], languages: Sequence[str]) -> list[float]:
        """Polarity per text; Chinese blends the e5 head with snownlp."""
        scores = self.head.score(self.embedder.embed(list(texts))) if texts else []
        out: list[float] = []
        for text, lang, s in zip(texts, languages, scores, strict=True):
            value = blend_chinese(float(s), snownlp_polarity(text)) if lang == "zh" else float(s)
            out.append(0.0 if not text.strip() else round(value, 4))
        return out

    def analyze(self, texts: Sequence[str]) -> list[CommentAnalysis]:
        texts = [str(t) for t in texts]
        languages = [detect_language(t) for t in texts]
        sentiments = self.sentiments(texts, languages)
        return [
            CommentAnalysis(text=t, language=lang, sentiment=s, keywords=extract_keywords(t, lang))
            for t, lang, s in zip(texts, languages, sentiments, strict=True)
        ]
