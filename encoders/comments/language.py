"""Script-based language detection: cheap, offline and good enough to route zh vs en comments.

Chinese is told from Japanese by kana and from Korean by hangul; Latin-script text is English unless
a few very common function words of another language dominate.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

# Frequent short words, enough to separate the main Latin-script languages on comment-length text.
_LATIN_MARKERS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "is",
            "it",
            "this",
            "was",
            "to",
            "of",
            "a",
            "i",
            "you",
            "not",
            "for",
            "with",
            "my",
            "but",
            "are",
            "have",
            "very",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "la",
            "les",
            "et",
            "est",
            "une",
            "des",
            "du",
            "pas",
            "je",
            "que",
            "pour",
            "avec",
            "très",
            "c'est",
        ]
    ),
    "de": frozenset(
        ["der", "die", "das", "und", "ist", "nicht", "ich", "ein", "eine", "mit", "sehr", "auch", "zu", "den"]
    ),
    "es": frozenset(
        ["el", "la", "los", "las", "y", "es", "un", "una", "que", "muy", "no", "por", "con", "para", "pero"]
    ),
    "it": frozenset(
        ["il", "lo", "la", "gli", "e", "è", "un", "una", "che", "non", "per", "con", "molto", "ma", "sono"]
    ),
    "pt": frozenset(
        ["o", "a", "os", "as", "e", "é", "um", "uma", "que", "não", "muito", "com", "para", "mas"]
    ),
    "nl": frozenset(
        ["de", "het", "een", "en", "is", "niet", "ik", "dat", "met", "zeer", "van", "voor", "maar"]
    ),
}

# English words that are also function words elsewhere ("as", "no", "de" in names): never count against English.
_ENGLISH_EXTRA = frozenset(
    ["as", "no", "so", "be", "in", "on", "at", "that", "like", "de", "an", "am", "me", "super"]
)

# Unicode name prefixes of non-Latin scripts that map to one language well enough.
_SCRIPT_LANG: list[tuple[str, str]] = [
    ("HANGUL", "ko"),
    ("HIRAGANA", "ja"),
    ("KATAKANA", "ja"),
    ("CYRILLIC", "ru"),
    ("ARABIC", "ar"),
    ("HEBREW", "he"),
    ("GREEK", "el"),
    ("THAI", "th"),
    ("DEVANAGARI", "hi"),
]


def _script(ch: str) -> str:
    if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff":
        return "HAN"
    name = unicodedata.name(ch, "")
    for prefix, _ in _SCRIPT_LANG:
        if name.startswith(prefix):
            return prefix
    if name.startswith("LATIN"):
        return "LATIN"
    return "OTHER"


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s dominant language, or ``"und"`` when it has no letters."""
    counts: dict[str, int] = {}
    for ch in text:
        if ch.isalpha():
            s = _script(ch)
            counts[s] = counts.get(s, 0) + 1
    total = sum(counts.values())
    if total == 0:
        return "und"
    kana = counts.get("HIRAGANA", 0) + counts.get("KATAKANA", 0)
    if kana and kana >= 0.1 * total:
        return "ja"
    if counts.get("HANGUL", 0) >= 0.3 * total:
        return "ko"
    han = counts.get("HAN", 0)
    # A Han character carries about a word; compare against Latin words, not letters.
    latin_words = len(_WORD.findall("".join(c if _script(c) == "LATIN" else " " for c in text)))
    if han and han >= latin_words:
        return "zh"
    top = max(counts, key=lambda k: counts[k])
    for prefix, lang in _SCRIPT_LANG:
        if top == prefix:
            return lang
    if top == "LATIN":
        return _latin_language(text)
    return "und"


def _latin_language(text: str) -> str:
    """English unless another language's function words are clearly more frequent (>= 2 hits)."""
    words = {w.lower() for w in _WORD.findall(text)}
    en = _LATIN_MARKERS["en"] | _ENGLISH_EXTRA
    hits = {
        lang: len(words & (markers if lang == "en" else markers - en))
        for lang, markers in _LATIN_MARKERS.items()
    }
    best = max(hits, key=lambda k: hits[k])
    if best != "en" and hits[best] >= 2 and hits[best] > hits["en"]:
        return best
    return "en"
