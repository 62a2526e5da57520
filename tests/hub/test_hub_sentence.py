"""sentence-transformers adapter on tiny BERT models saved as sentence-transformers folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from encoders.base import TextEncoder
from encoders.hub.sentence import SentenceTextEncoder


@pytest.fixture(scope="session")
def e5(sentence_dir: Path) -> SentenceTextEncoder:
    return SentenceTextEncoder(str(sentence_dir), device="cpu")


@pytest.fixture(scope="session")
def plain(plain_sentence_dir: Path) -> SentenceTextEncoder:
    return SentenceTextEncoder(str(plain_sentence_dir), device="cpu")


@pytest.fixture(scope="session")
def sentences(sentiment_dir: Path) -> list[str]:
    """Twelve real review sentences (yelp), trailing null-class entry dropped."""
    rows = json.loads((sentiment_dir / "yelp.json").read_text(encoding="utf-8"))
    return [r["text"] for r in rows if r.get("class") is not None][:12]


def test_protocol_and_info(e5: SentenceTextEncoder, sentence_dir: Path) -> None:
    assert isinstance(e5, TextEncoder)
    assert e5.info.model == sentence_dir.name == "tiny-e5"
    assert e5.info.dim == 32 and e5.info.modality == "text"
    assert "query: " in e5.info.extra["roles"]


def test_real_sentences_unit_rows_batch_equals_single(e5: SentenceTextEncoder, sentences: list[str]) -> None:
    vecs = e5.encode_text(sentences)
    assert vecs.shape == (len(sentences), 32) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    for i, s in enumerate(sentences):
        assert float(e5.encode_text([s])[0] @ vecs[i]) >= 0.9999
    assert e5.encode_text([]).shape == (0, 32)
    empty = e5.encode_text(["", "hello world"])
    np.testing.assert_allclose(np.linalg.norm(empty, axis=1), 1.0, atol=1e-5)


def test_roles_use_configured_prompts(e5: SentenceTextEncoder, sentences: list[str]) -> None:
    assert e5.prompt_names == {"query": "query", "passage": "passage"}
    q = e5.encode_text(sentences[:3], role="query")
    p = e5.encode_text(sentences[:3], role="passage")
    assert np.all(np.sum(q * p, axis=1) < 0.99999)  # different prefixes, different vectors
    # The query role is exactly the model's own prompt applied by hand.
    by_hand = e5._model.encode([f"query: {s}" for s in sentences[:3]], convert_to_numpy=True)
    by_hand = by_hand / np.linalg.norm(by_hand, axis=1, keepdims=True)
    np.testing.assert_allclose(q, by_hand, atol=1e-5)


def test_models_without_prompts_ignore_roles(plain: SentenceTextEncoder, sentences: list[str]) -> None:
    assert plain.prompt_names == {"query": None, "passage": None}
    assert plain.info.extra["roles"] == "none"
    np.testing.assert_array_equal(
        plain.encode_text(sentences[:4], role="query"), plain.encode_text(sentences[:4], role="passage")
    )


def test_copied_folder_gives_identical_vectors(
    sentence_dir: Path, tmp_path: Path, sentences: list[str]
) -> None:
    copy = tmp_path / "copied-e5"
    shutil.copytree(sentence_dir, copy)
    a = SentenceTextEncoder(str(sentence_dir), device="cpu")
    b = SentenceTextEncoder(str(copy), device="cpu")
    np.testing.assert_array_equal(
        a.encode_text(sentences, role="query"), b.encode_text(sentences, role="query")
    )
    assert b.info.model == "copied-e5"


def test_bad_input(e5: SentenceTextEncoder) -> None:
    with pytest.raises(TypeError, match="single str"):
        e5.encode_text("hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        e5.encode_text(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="role"):
        e5.encode_text(["ok"], role="document")  # type: ignore[arg-type]
