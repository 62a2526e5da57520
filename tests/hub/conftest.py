"""Tiny hub models built offline with random weights and saved with save_pretrained.

No network: every tokenizer is generated here (byte-level BPE vocabularies, a WordPiece vocab
file, a SentencePiece model trained on a few real captions), so the real loading code in
encoders.hub runs against real folders laid out exactly as the hub lays them out.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

CAPTIONS = [
    "a red kangaroo",
    "a photo of a cat",
    "a photo of a dog",
    "the quick brown fox jumps over the lazy dog",
    "music and speech in a video",
    "a bunny rabbit in a cartoon forest",
    "hello world",
]
WHISPER_LANGS = ["en", "zh", "de", "es", "fr"]


def _byte_vocab(prefix: list[str], suffix: str = "") -> dict[str, int]:
    """Every byte as a byte-level BPE symbol (optionally also with an end-of-word suffix)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {tok: i for i, tok in enumerate(prefix)}
    for ch in bytes_to_unicode().values():
        vocab[ch] = len(vocab)
        if suffix:
            vocab[ch + suffix] = len(vocab)
    return vocab


def _add_merges(vocab: dict[str, int], merges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return merges


def build_clip(folder: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab = _byte_vocab([], suffix="</w>")
    merges = _add_merges(vocab, [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>")])
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=merges)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    text = dict(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=32, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                  num_attention_heads=4)  # fmt: skip
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)).eval()
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    return folder


def build_siglip(folder: Path, work: Path) -> Path:
    import sentencepiece as spm
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor, SiglipTokenizer

    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(CAPTIONS * 10), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(work / "spiece"), vocab_size=60, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2,
    )  # fmt: skip
    tok = SiglipTokenizer(vocab_file=str(work / "spiece.model"), model_max_length=16)
    images = SiglipImageProcessor(size={"height": 32, "width": 32})
    text = dict(
        vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=16, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
    )  # fmt: skip
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                  num_attention_heads=4)  # fmt: skip
    torch.manual_seed(1)
    model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).eval()
    model.save_pretrained(folder)
    SiglipProcessor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    return folder


CLAP_RATE = 32000  # not CLAP's usual 48 kHz, so a test can see the rate is read from the folder
CLAP_WINDOW_S = 2


def build_clap(folder: Path) -> Path:
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    vocab = _byte_vocab(["<s>", "<pad>", "</s>", "<unk>"])
    merges = _add_merges(vocab, [("Ġ", "c"), ("a", "t"), ("Ġc", "at")])
    vocab["<mask>"] = len(vocab)
    tok = RobertaTokenizer(vocab=vocab, merges=merges)
    # spec_size 64 with 16 mel bins fits at most 256 frames: 2 s at a 320-sample hop gives 201.
    features = ClapFeatureExtractor(
        feature_size=16, sampling_rate=CLAP_RATE, hop_length=320, max_length_s=CLAP_WINDOW_S, fft_window_size=800,
        frequency_max=14000, truncation="rand_trunc",
    )  # fmt: skip
    text = dict(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=40, pad_token_id=tok.pad_token_id, bos_token_id=0, eos_token_id=2,
    )  # fmt: skip
    audio = dict(
        spec_size=64, num_mel_bins=16, window_size=4, patch_size=2, patch_stride=2, hidden_size=32,
        patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2], enable_fusion=False,
    )  # fmt: skip
    torch.manual_seed(2)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=24)).eval()
    model.save_pretrained(folder)
    ClapProcessor(feature_extractor=features, tokenizer=tok).save_pretrained(folder)
    return folder


def build_sentence(folder: Path, work: Path, prompts: dict[str, str] | None) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    words = sorted({w for c in CAPTIONS for w in c.split()} | {"query", "passage", ":", ",", ".", "!"})
    letters = list("abcdefghijklmnopqrstuvwxyz")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *letters, *("##" + c for c in letters)]
    tok = BertTokenizer(vocab={t: i for i, t in enumerate(dict.fromkeys(tokens))})
    torch.manual_seed(3)
    bert = BertModel(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=64,
        )  # fmt: skip
    ).eval()
    base = work / "bert"
    bert.save_pretrained(base)
    tok.save_pretrained(base)
    tr = Transformer(str(base), max_seq_length=64)
    st = SentenceTransformer(
        modules=[tr, Pooling(tr.get_embedding_dimension(), pooling_mode="mean")],
        prompts=prompts,
        device="cpu",
    )
    st.save(str(folder))
    return folder


def whisper_specials() -> list[str]:
    return [
        "<|endoftext|>", "<|startoftranscript|>", *(f"<|{c}|>" for c in WHISPER_LANGS), "<|translate|>",
        "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>",
    ]  # fmt: skip


def build_whisper(
    folder: Path, rig: str | None = None, multilingual: bool = True, max_length: int = 12
) -> Path:
    """A 1-layer Whisper; ``rig`` fixes what its decoder says, to test detection and decoding logic.

    Rigging: the decoder's final layer norm is set to weight 0 and bias b, so every position ends in
    the same hidden state b and the logits are ``E @ b`` (E = tied token embeddings). Rows of E set
    to multiples of b then decide the winner: ``"de"`` makes <|de|> the top token and the letter
    'h' the best non-special one; ``"silence"`` additionally makes <|nocaptions|> win outright.
    """
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    vocab = _byte_vocab([])
    merges = _add_merges(vocab, [("Ġ", "h"), ("e", "l"), ("el", "l"), ("ell", "o")])
    tok = WhisperTokenizer(vocab=vocab, merges=merges)
    specials = whisper_specials()
    tok.add_special_tokens({"additional_special_tokens": specials[1:]})
    ids = {s: tok.convert_tokens_to_ids(s) for s in specials}
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
        max_source_positions=1500, max_target_positions=64, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=sot, suppress_tokens=[], begin_suppress_tokens=[],
    )  # fmt: skip
    torch.manual_seed(4)
    model = WhisperForConditionalGeneration(config).eval()
    # Never generate special tokens other than end-of-text (as real Whisper configs do).
    suppress = [ids[s] for s in specials if s not in ("<|endoftext|>",)]
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot, max_length=max_length,
        lang_to_id={f"<|{c}|>": ids[f"<|{c}|>"] for c in WHISPER_LANGS},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        is_multilingual=multilingual, no_timestamps_token_id=ids["<|notimestamps|>"], suppress_tokens=suppress,
        begin_suppress_tokens=[],
    )  # fmt: skip
    if rig is not None:
        with torch.no_grad():
            b = torch.full((32,), 0.5)
            norm = model.model.decoder.layer_norm
            norm.weight.zero_()
            norm.bias.copy_(b)
            emb = model.model.decoder.embed_tokens.weight
            emb.normal_(0.0, 0.02)
            emb[ids["<|de|>"]] = 2.0 * b
            emb[vocab["h"]] = 1.0 * b
            if rig == "silence":
                emb[ids["<|nocaptions|>"]] = 3.0 * b
    model.save_pretrained(folder)
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok
    ).save_pretrained(folder)
    return folder


def read_16k(path: Path) -> np.ndarray:
    """A real recording as mono float32 at Whisper's 16 kHz."""
    from math import gcd

    import soundfile as sf
    from scipy.signal import resample_poly

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    g = gcd(16000, rate)
    return resample_poly(data.mean(axis=1), 16000 // g, rate // g).astype(np.float32)


def train_whisper_on(folder: Path, wave: np.ndarray, text: str, max_steps: int = 150) -> Path:
    """Overfit the tiny Whisper in ``folder`` to say ``text`` (in English) for ``wave``, then save it.

    A few dozen Adam steps make the model memorise one utterance, which lets a test check the
    whole recognition path (features, language step, forced prompt, decoding) against real words.
    """
    from transformers import AutoProcessor, WhisperForConditionalGeneration

    proc = AutoProcessor.from_pretrained(folder)
    model = WhisperForConditionalGeneration.from_pretrained(folder)
    tok = proc.tokenizer
    prompt = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    ids = [tok.convert_tokens_to_ids(t) for t in prompt]
    ids += tok(" " + text, add_special_tokens=False).input_ids + [tok.convert_tokens_to_ids("<|endoftext|>")]
    seq = torch.tensor([ids])
    feats = proc.feature_extractor(wave, sampling_rate=16000, return_tensors="pt").input_features
    torch.manual_seed(5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    loss = torch.tensor(float("inf"))
    for _ in range(max_steps):
        logits = model(input_features=feats, decoder_input_ids=seq[:, :-1]).logits[0]
        loss = torch.nn.functional.cross_entropy(logits, seq[0, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if float(loss.detach()) < 0.05:
            break
    assert float(loss.detach()) < 0.05, f"tiny Whisper did not memorise the clip (loss {float(loss):.3f})"
    model.eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def hub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hub")


@pytest.fixture(scope="session")
def clip_dir(hub_dir: Path) -> Path:
    return build_clip(hub_dir / "tiny-clip")


@pytest.fixture(scope="session")
def siglip_dir(hub_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_siglip(hub_dir / "tiny-siglip", tmp_path_factory.mktemp("spm"))


@pytest.fixture(scope="session")
def clap_dir(hub_dir: Path) -> Path:
    return build_clap(hub_dir / "tiny-clap")


@pytest.fixture(scope="session")
def sentence_dir(hub_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    prompts = {"query": "query: ", "passage": "passage: "}
    return build_sentence(hub_dir / "tiny-e5", tmp_path_factory.mktemp("bert-e5"), prompts)


@pytest.fixture(scope="session")
def plain_sentence_dir(hub_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sentence(hub_dir / "tiny-minilm", tmp_path_factory.mktemp("bert-plain"), None)


@pytest.fixture(scope="session")
def whisper_de_dir(hub_dir: Path) -> Path:
    return build_whisper(hub_dir / "tiny-whisper-de", rig="de")


@pytest.fixture(scope="session")
def whisper_silence_dir(hub_dir: Path) -> Path:
    return build_whisper(hub_dir / "tiny-whisper-silence", rig="silence")


@pytest.fixture(scope="session")
def whisper_english_dir(hub_dir: Path) -> Path:
    return build_whisper(hub_dir / "tiny-whisper-en", rig="de", multilingual=False)


@pytest.fixture(scope="session")
def whisper_trained_dir(hub_dir: Path, speech_wav: Path) -> Path:
    folder = build_whisper(hub_dir / "tiny-whisper-hello", max_length=64)
    text = speech_wav.with_suffix(".txt").read_text(encoding="utf-8").strip()
    return train_whisper_on(folder, read_16k(speech_wav), text)


@pytest.fixture(scope="session")
def whisper_random_dir(hub_dir: Path) -> Path:
    return build_whisper(hub_dir / "tiny-whisper")


def load_rgb(path: Path, max_side: int = 256) -> np.ndarray:
    """A stamp PNG as RGB uint8, transparency flattened on white (how the media layer shows it)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGBA")
        im.thumbnail((max_side, max_side))
        canvas = Image.new("RGBA", im.size, (255, 255, 255, 255))
        canvas.alpha_composite(im)
        return np.asarray(canvas.convert("RGB"), dtype=np.uint8)


@pytest.fixture(scope="session")
def stamp_frames(stamps_dir: Path) -> list[np.ndarray]:
    """Six real tuxpaint stamps of different sizes."""
    names = ["marsupials/koala.png", "marsupials/kangaroo.png", "marsupials/wombat.png", "insects/hornet.png"]
    paths = [stamps_dir / "animals" / n for n in names]
    extra = sorted((stamps_dir / "food").rglob("*.png"))[:2]
    return [load_rgb(p) for p in [*paths, *extra]]


@pytest.fixture(scope="session")
def bunny_frames(bigbuckbunny: Path) -> list[np.ndarray]:
    """Three 1280x720 frames of Big Buck Bunny via decord."""
    import decord

    vr = decord.VideoReader(str(bigbuckbunny))
    idx = np.linspace(0, len(vr) - 1, 3).round().astype(int).tolist()
    return [np.ascontiguousarray(f) for f in vr.get_batch(idx).asnumpy()]
