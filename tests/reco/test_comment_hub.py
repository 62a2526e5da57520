"""The hub (LLM) comment analyzer on a tiny randomly initialised Llama saved locally.

Its replies are garbage by construction, so these tests check the loading path (AutoTokenizer +
AutoModelForCausalLM + chat template, from a folder) and that every field falls back to the bundled parts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from encoders.comments import load_analyzer
from encoders.comments.hub import LLMAnalyzer

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llm")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(
        ['{"language": "en", "sentiment": 0.5, "keywords": ["video"]}', "analyze the comment"], trainer
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def test_hub_analyzer_loads_folder_and_falls_back(tiny_llm: Path, analyzer) -> None:  # noqa: ANN001
    hub = load_analyzer(str(tiny_llm), device="cpu")
    assert isinstance(hub, LLMAnalyzer) and hub.name == f"hub:{tiny_llm.name}"
    hub.max_new_tokens = 8
    hub._fallback = analyzer  # reuse the session's bundled analyzer
    texts = ["This movie was wonderful, the actors were brilliant.", "这个手机太差了，完全不能用。"]
    reply = hub.generate(texts[0])
    assert isinstance(reply, str)
    got = hub.analyze(texts)
    want = analyzer.analyze(texts)
    assert hub.fallback_counts == {"language": 2, "sentiment": 2, "keywords": 2}
    assert [(g.language, g.sentiment, g.keywords) for g in got] == [
        (w.language, w.sentiment, w.keywords) for w in want
    ]


def test_missing_gguf_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="GGUF model file not found"):
        load_analyzer(str(tmp_path / "model.gguf"))
