"""Comment analysis with an instruction-tuned LLM from the hub (or a local folder / GGUF file).

The model is asked for JSON ``{"language", "sentiment", "keywords"}``. Small models often answer with
prose, partial JSON or out-of-range numbers, so every field is parsed on its own and whatever is missing
or invalid is filled in by the bundled analyzer's part for that field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from encoders.comments.bundled import BundledAnalyzer
from encoders.comments.keywords import extract_keywords
from encoders.comments.language import detect_language
from encoders.comments.types import CommentAnalysis

PROMPT = (
    "Analyze the user comment. Reply with only a JSON object with keys "
    '"language" (ISO 639-1 code), "sentiment" (number from -1 very negative to 1 very positive) and '
    '"keywords" (list of up to 5 short topic words from the comment).\nComment: {text}'
)
_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)
_LANG_CODE = re.compile(r"^[a-z]{2,3}$")


_FIELD_LANG = re.compile(r'"language"\s*:\s*"([^"]*)"')
_FIELD_SENT = re.compile(r'"sentiment"\s*:\s*(-?\d+(?:\.\d+)?|"[^"]*")')
_FIELD_KWS = re.compile(r'"keywords"\s*:\s*\[(.*?)(?:\]|$)', re.DOTALL)
_QUOTED = re.compile(r'"([^"]*)"')
# Small models often answer with a label instead of a number.
_SENTIMENT_WORDS = {"positive": 0.8, "negative": -0.8, "neutral": 0.0, "mixed": 0.0}


def parse_llm_reply(reply: str) -> dict[str, Any]:
    """Pull the valid fields out of a model reply; absent or invalid ones are simply left out.

    A complete JSON object is used when there is one; otherwise each field is read on its own, which
    also works on replies cut off by the token limit.
    """
    found: dict[str, Any] | None = None
    for match in _JSON_OBJECT.finditer(reply):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            found = obj
            break
    if found is None:
        found = _fields_by_regex(reply)
    out: dict[str, Any] = {}
    lang = found.get("language")
    if isinstance(lang, str):
        code = re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]  # "en-US" -> "en"
        if _LANG_CODE.match(code):
            out["language"] = code
    sent = found.get("sentiment")
    if isinstance(sent, str):
        sent = _SENTIMENT_WORDS.get(sent.strip().lower())
    if isinstance(sent, (int, float)) and not isinstance(sent, bool) and -1.0 <= float(sent) <= 1.0:
        out["sentiment"] = float(sent)
    kws = found.get("keywords")
    if isinstance(kws, list):
        words = list(dict.fromkeys(k.strip() for k in kws if isinstance(k, str) and k.strip()))
        if words:
            out["keywords"] = words[:8]
    return out


def _fields_by_regex(reply: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if m := _FIELD_LANG.search(reply):
        fields["language"] = m.group(1)
    if m := _FIELD_SENT.search(reply):
        raw = m.group(1)
        fields["sentiment"] = raw.strip('"') if raw.startswith('"') else float(raw)
    if m := _FIELD_KWS.search(reply):
        fields["keywords"] = _QUOTED.findall(m.group(1))
    return fields


class LLMAnalyzer:
    """Prompts a causal LM (transformers, chat template) per comment; bundled parts fill the gaps."""

    def __init__(
        self,
        source: str,
        device: str = "cpu",
        gguf_file: str | None = None,
        fallback: BundledAnalyzer | None = None,
        max_new_tokens: int = 64,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        self.model = AutoModelForCausalLM.from_pretrained(source, **kwargs).to(device).eval()
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.name = f"hub:{Path(source).name if Path(source).exists() else source}"
        self._fallback = fallback
        self.fallback_counts = {"language": 0, "sentiment": 0, "keywords": 0}

    @property
    def fallback(self) -> BundledAnalyzer:
        if self._fallback is None:
            self._fallback = BundledAnalyzer()
        return self._fallback

    def generate(self, text: str) -> str:
        """The model's raw reply to the analysis prompt (greedy, bounded length)."""
        import torch

        messages = [{"role": "user", "content": PROMPT.format(text=text)}]
        if getattr(self.tokenizer, "chat_template", None):
            prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            prompt = messages[0]["content"] + "\n"
        enc = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        pad = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        with torch.inference_mode():
            out = self.model.generate(
                **enc, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad
            )
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)

    def analyze(self, texts: Sequence[str]) -> list[CommentAnalysis]:
        results: list[CommentAnalysis] = []
        for text in texts:
            parsed = parse_llm_reply(self.generate(text)) if text.strip() else {}
            lang = parsed.get("language")
            if lang is None:
                self.fallback_counts["language"] += 1
                lang = detect_language(text)
            sentiment = parsed.get("sentiment")
            if sentiment is None:
                self.fallback_counts["sentiment"] += 1
                sentiment = self.fallback.sentiments([text], [lang])[0]
            words = parsed.get("keywords")
            if words is None:
                self.fallback_counts["keywords"] += 1
                keywords = extract_keywords(text, lang)
            else:
                n = len(words)
                keywords = [(w, round(1.0 - i / max(n, 1), 4)) for i, w in enumerate(words)]
            results.append(
                CommentAnalysis(text=text, language=lang, sentiment=float(sentiment), keywords=keywords)
            )
        return results
