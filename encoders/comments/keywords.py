"""Keywords per comment: jieba TF-IDF for Chinese, a RAKE-style phrase scorer for English.

Weights are normalised so the best keyword of a comment scores 1.0, which makes keywords from short
and long comments comparable when a profile sums them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import lru_cache

_STOPWORDS_EN = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "almost",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren't",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "can't",
        "cannot",
        "could",
        "couldn't",
        "did",
        "didn't",
        "do",
        "does",
        "doesn't",
        "doing",
        "don't",
        "down",
        "during",
        "each",
        "even",
        "ever",
        "every",
        "few",
        "for",
        "from",
        "further",
        "get",
        "gets",
        "got",
        "had",
        "hadn't",
        "has",
        "hasn't",
        "have",
        "haven't",
        "having",
        "he",
        "he'd",
        "he'll",
        "he's",
        "her",
        "here",
        "here's",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "how's",
        "however",
        "i",
        "i'd",
        "i'll",
        "i'm",
        "i've",
        "if",
        "in",
        "into",
        "is",
        "isn't",
        "it",
        "it's",
        "its",
        "itself",
        "just",
        "let's",
        "like",
        "lot",
        "me",
        "more",
        "most",
        "much",
        "must",
        "mustn't",
        "my",
        "myself",
        "never",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "one",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "quite",
        "rather",
        "really",
        "same",
        "shan't",
        "she",
        "she'd",
        "she'll",
        "she's",
        "should",
        "shouldn't",
        "so",
        "some",
        "such",
        "than",
        "that",
        "that's",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "there's",
        "these",
        "they",
        "they'd",
        "they'll",
        "they're",
        "they've",
        "this",
        "those",
        "though",
        "through",
        "thus",
        "to",
        "too",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "very",
        "was",
        "wasn't",
        "we",
        "we'd",
        "we'll",
        "we're",
        "we've",
        "were",
        "weren't",
        "what",
        "what's",
        "when",
        "when's",
        "where",
        "where's",
        "which",
        "while",
        "who",
        "who's",
        "whom",
        "why",
        "why's",
        "will",
        "with",
        "won't",
        "would",
        "wouldn't",
        "yet",
        "you",
        "you'd",
        "you'll",
        "you're",
        "you've",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "still",
        "well",
        "also",
        "again",
        "back",
        "ever",
        "way",
        "thing",
        "things",
        "bit",
        "lot",
        "lots",
        "maybe",
        "perhaps",
        "yes",
        "oh",
        "ok",
        "okay",
        "would've",
        "could've",
        "many",
    ]
)
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|[0-9]+|[^\sA-Za-z0-9]")
# jieba part-of-speech tags worth keeping: nouns, names, places, verbs-as-nouns, adjectives, English words.
_ZH_POS = ("n", "nr", "ns", "nt", "nz", "nw", "vn", "v", "a", "an", "eng")


def english_keywords(text: str, top_k: int = 8) -> list[tuple[str, float]]:
    """RAKE: phrases are runs of content words; a word scores degree/frequency, a phrase the sum."""
    phrases: list[list[str]] = []
    current: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        word = tok.strip("'-")
        if not word or not word[0].isalnum() or word in _STOPWORDS_EN or word.isdigit() or len(word) < 2:
            if current:
                phrases.append(current)
                current = []
            continue
        current.append(word)
    if current:
        phrases.append(current)
    phrases = [p[:4] for p in phrases]  # long runs are usually missing stopwords, not real phrases
    freq: dict[str, int] = defaultdict(int)
    degree: dict[str, int] = defaultdict(int)
    for phrase in phrases:
        for w in phrase:
            freq[w] += 1
            degree[w] += len(phrase)
    scores: dict[str, float] = {}
    for phrase in phrases:
        key = " ".join(phrase)
        scores[key] = max(scores.get(key, 0.0), sum(degree[w] / freq[w] for w in phrase))
    return _normalise(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k])


@lru_cache(maxsize=1)
def _jieba_analyse():  # noqa: ANN202 - module object
    import jieba
    import jieba.analyse

    jieba.setLogLevel(60)  # its dictionary-loading chatter goes to stderr otherwise
    return jieba.analyse


def chinese_keywords(text: str, top_k: int = 8) -> list[tuple[str, float]]:
    """jieba TF-IDF over content parts of speech (drops pronouns, measure words and particles)."""
    analyse = _jieba_analyse()
    tags = [
        (str(w), float(s))
        for w, s in analyse.extract_tags(text, topK=top_k, withWeight=True, allowPOS=_ZH_POS)
    ]
    if len(tags) < top_k:
        # extract_tags drops one-character words, yet 猫, 狗, 车 are often what a comment is about.
        import jieba.posseg

        floor = min((s for _, s in tags), default=1.0) * 0.8
        seen = {w for w, _ in tags}
        for pair in jieba.posseg.cut(text):
            if len(pair.word) == 1 and pair.flag.startswith("n") and pair.word not in seen:
                seen.add(pair.word)
                tags.append((pair.word, floor))
    return _normalise(tags[:top_k])


def extract_keywords(text: str, language: str, top_k: int = 8) -> list[tuple[str, float]]:
    """Keywords in the comment's own language; languages other than zh use the English scorer."""
    if not text.strip():
        return []
    if language in ("zh", "ja"):
        return chinese_keywords(text, top_k)
    return english_keywords(text, top_k)


def _normalise(items: list[tuple[str, float]]) -> list[tuple[str, float]]:
    if not items:
        return []
    top = max(s for _, s in items) or 1.0
    return [(k, round(s / top, 4)) for k, s in items]
