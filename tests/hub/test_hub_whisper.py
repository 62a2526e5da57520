"""Whisper adapter on tiny models whose decoder is rigged (see conftest.build_whisper), fed real speech.

The rigged decoders say one letter over and over, which the speech gate rightly drops ("too few
words"), so the tests of the decoding mechanics open the gate (OPEN) and the gate tests use the default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from encoders.base import SpeechRecognizer
from encoders.hub.whisper import WhisperRecognizer, language_code
from encoders.speech_gate import GateThresholds

from .conftest import read_16k  # noqa: TID252


@pytest.fixture(scope="session")
def hello(speech_wav: Path) -> np.ndarray:
    return read_16k(speech_wav)


# Every test but the no-speech probability one passes: the decoding mechanics, not the gate, are tested.
OPEN = GateThresholds(min_vad_share=0.0, min_avg_logprob=-np.inf, max_compression_ratio=np.inf, min_words=0)


@pytest.fixture(scope="session")
def rigged(whisper_de_dir: Path) -> WhisperRecognizer:
    return WhisperRecognizer(str(whisper_de_dir), device="cpu", thresholds=OPEN)


def test_language_token_parsing() -> None:
    assert language_code("<|de|>") == "de"
    assert language_code("<|haw|>") == "haw"
    with pytest.raises(ValueError, match="not a Whisper language token"):
        language_code("<|transcribe|>")


def test_protocol_and_info(rigged: WhisperRecognizer, whisper_de_dir: Path) -> None:
    assert isinstance(rigged, SpeechRecognizer)
    assert rigged.sample_rate == 16000
    assert rigged.info.dim == 0 and rigged.info.model == whisper_de_dir.name
    assert rigged.info.extra["languages"] == "5"


def test_detects_the_language_the_decoder_prefers(rigged: WhisperRecognizer, hello: np.ndarray) -> None:
    code, prob, no_speech = rigged.detect_language(hello)
    assert code == "de" and prob > 0.99
    assert no_speech < 0.01


def test_transcribes_in_detected_language(rigged: WhisperRecognizer, hello: np.ndarray) -> None:
    out = rigged.transcribe(hello)
    assert out.has_speech and out.language == "de" and out.language_probability > 0.99
    # Special tokens are suppressed, so greedy decoding repeats the best text token ('h') to max_length.
    assert out.text and set(out.text) == {"h"}


def test_long_audio_is_cut_into_30s_windows(rigged: WhisperRecognizer, hello: np.ndarray) -> None:
    long = np.tile(hello, int(np.ceil(65 * 16000 / hello.size)))[: 65 * 16000]
    assert len(rigged._windows(long)) == 3
    out = rigged.transcribe(long)
    assert len(out.text.split(" ")) == 3  # one decoded piece per window


def test_no_speech_token_means_no_speech(whisper_silence_dir: Path, hello: np.ndarray) -> None:
    silent = WhisperRecognizer(str(whisper_silence_dir), device="cpu")
    _, _, no_speech = silent.detect_language(hello)
    assert no_speech > 0.9
    out = silent.transcribe(hello)
    assert not out.has_speech and out.language is None and out.text == ""
    assert out.gate is not None and out.gate.reason.startswith("recogniser says no speech")
    assert out.gate.signals.no_speech_prob is not None and out.gate.signals.no_speech_prob > 0.9


def test_english_only_model_reports_english(whisper_english_dir: Path, hello: np.ndarray) -> None:
    """An English-only checkpoint has no language to detect: it says "en" and decodes without a language prompt."""
    rec = WhisperRecognizer(str(whisper_english_dir), device="cpu", batch_size=2, thresholds=OPEN)
    assert rec.info.extra["languages"] == "en"
    out = rec.transcribe(np.concatenate([hello] * 8))  # > 30 s: two windows, one batch
    assert out.language == "en" and out.language_probability == 1.0 and out.has_speech
    assert len(out.text.split(" ")) == 2


@pytest.mark.slow
def test_memorised_utterance_is_transcribed_exactly(whisper_trained_dir: Path, speech_wav: Path) -> None:
    """A tiny Whisper trained on this one real clip gives back its words through the adapter."""
    rec = WhisperRecognizer(str(whisper_trained_dir), device="cpu")
    out = rec.transcribe(read_16k(speech_wav))
    assert out.text == speech_wav.with_suffix(".txt").read_text(encoding="utf-8").strip()
    assert out.language == "en" and out.language_probability > 0.9 and out.has_speech


def test_random_model_matches_transformers(whisper_random_dir: Path, hello: np.ndarray) -> None:
    """On an unrigged model the adapter's language, its probability, the no-speech probability and the
    text equal what transformers gives when driven by hand (one window: no mixing to account for)."""
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    rec = WhisperRecognizer(str(whisper_random_dir), device="cpu", thresholds=OPEN)
    code, prob, no_speech = rec.detect_language(hello)

    processor = WhisperProcessor.from_pretrained(whisper_random_dir)
    model = WhisperForConditionalGeneration.from_pretrained(whisper_random_dir).eval()
    tok = processor.tokenizer
    feats = processor.feature_extractor(hello, sampling_rate=16000, return_tensors="pt").input_features
    langs = sorted(model.generation_config.lang_to_id)
    with torch.no_grad():
        start = torch.tensor([[tok.convert_tokens_to_ids("<|startoftranscript|>")]])
        logits = model(input_features=feats, decoder_input_ids=start).logits[0, 0].double()
    lang_probs = torch.softmax(logits[[tok.convert_tokens_to_ids(t) for t in langs]], dim=-1)
    best = int(torch.argmax(lang_probs))
    assert code == langs[best][2:-2]
    assert prob == pytest.approx(float(lang_probs[best]), abs=1e-5)
    expected_no_speech = float(torch.softmax(logits, dim=-1)[tok.convert_tokens_to_ids("<|nocaptions|>")])
    assert no_speech == pytest.approx(expected_no_speech, abs=1e-6)

    out = rec.transcribe(hello)
    with torch.no_grad():
        ids = model.generate(input_features=feats, language=langs[best], task="transcribe")
    expected_text = tok.batch_decode(ids, skip_special_tokens=True)[0].strip()
    assert out.text == (expected_text if out.has_speech else "")
    assert out.has_speech == (bool(expected_text) and expected_no_speech < rec.no_speech_threshold)


def test_default_gate_drops_a_one_word_loop(whisper_de_dir: Path, hello: np.ndarray) -> None:
    """Real speech (high VAD share), a confident decode, but one 'word' repeated: not a transcript."""
    rec = WhisperRecognizer(str(whisper_de_dir), device="cpu")
    out = rec.transcribe(hello)
    assert not out.has_speech and out.text == "" and out.gate is not None
    assert out.gate.reason == "too few words (1 < 2)" and set(out.gate.heard) == {"h"}
    signals = out.gate.signals
    assert signals.vad_share is not None and signals.vad_share > 0.5
    assert signals.avg_logprob is not None and signals.avg_logprob > -1.0 and signals.words == 1


def test_avg_logprob_is_the_decoded_tokens_log_probability(
    rigged: WhisperRecognizer, whisper_de_dir: Path, hello: np.ndarray
) -> None:
    """The rigged decoder ends every position in the same hidden state b (its final norm's bias), so
    each decoded 'h' has log p = log_softmax(E @ b)['h'] over the tokens generate may emit: the
    adapter's teacher-forced average must equal that, worked out here from the weights alone."""
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    out = rigged.transcribe(hello)
    model = WhisperForConditionalGeneration.from_pretrained(whisper_de_dir).eval()
    tok = WhisperProcessor.from_pretrained(whisper_de_dir).tokenizer
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    with torch.no_grad():
        logits = model.proj_out.weight.double() @ model.model.decoder.layer_norm.bias.double()
    allowed = [i for i in range(logits.shape[0]) if i not in set(tok.all_special_ids) or i == eot]
    h = tok.convert_tokens_to_ids("h")
    expected = float(torch.log_softmax(logits[allowed], dim=0)[allowed.index(h)])
    assert out.gate is not None and out.gate.signals.avg_logprob == pytest.approx(expected, abs=1e-3)


def test_bad_waveform(rigged: WhisperRecognizer) -> None:
    with pytest.raises(ValueError, match="waveform.*mono"):
        rigged.transcribe(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="waveform.*empty"):
        rigged.transcribe(np.zeros(0, dtype=np.float32))
