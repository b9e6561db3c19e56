"""The tokenizer rebuilt from GGUF metadata splits text exactly as the source's Hugging Face tokenizer: on the
real Llama 3 vocabulary with llama.cpp's own test vectors, and on the tiny checkpoint against its
tokenizer.json, special tokens and non-ASCII text included; detokenizing gives the text back."""

import json
import os

import pytest
from tokenizers import Tokenizer, pre_tokenizers

from tests.checkpoints import EXTRA, training_text
from tritlm.runtime import ModelError
from tritlm.runtime.gguf import read_gguf
from tritlm.runtime.tokenizer import GGUFTokenizer, byte_decoder

VOCAB = os.path.join(os.path.dirname(__file__), "..", ".cache", "ggml-vocab-llama-bpe.gguf")
TEXTS = (
    training_text(200, seed=3)
    + EXTRA
    + [
        "",
        " ",
        "  leading and trailing  ",
        "tabs\tand\r\nwindows\nnewlines\n\n\n",
        "don't I'LL we've 'S",
        "1234567890 3.14159 1e-5 0x1F",
        "naïve façade Ærøskøbing ß",
        "Ελληνικά Русский עברית العربية",
        "日本語のテキスト 中文 한국어",
        "emoji 🦙🚀 👩‍👩‍👧 ✅ flags 🇫🇷",
        "e\u0301 combining and \u200b zero width",
        "<|eot_id|> inside text <|begin_of_text|>",
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "<|reserved_special_token_3|>x",
        "code: if (a != b) { return -1; } // ok",
        "    indented\n        more",
    ]
)


@pytest.fixture(scope="module")
def llama3():
    if not os.path.exists(VOCAB):
        pytest.skip(f"{VOCAB} missing: `make test` fetches llama.cpp's vocabulary files")
    with read_gguf(VOCAB) as f:
        return GGUFTokenizer(f.metadata)


def llama_cpp_vectors():
    """llama.cpp's test-tokenizer-0 cases: (text, ids without bos)."""
    with open(VOCAB + ".inp", encoding="utf-8") as f:
        texts = f.read().split("\n__ggml_vocab_test__\n")[:-1]
    with open(VOCAB + ".out", encoding="utf-8") as f:
        ids = [[int(i) for i in line.split()] for line in f.read().split("\n")[:-1]]
    assert len(texts) == len(ids) > 40
    return list(zip(texts, ids))


def test_llama3_vocabulary_matches_llama_cpp_vectors(llama3):
    for text, ids in llama_cpp_vectors():
        assert llama3.tokenize(text, add_bos=False) == ids, text
        assert llama3.detokenize(ids) == text


def test_llama3_bos_and_control_tokens(llama3):
    assert (llama3.bos_id, llama3.eos_id, llama3.add_bos) == (128000, 128001, True)
    assert llama3.end_ids == {128001, 128009}  # <|end_of_text|>, <|eot_id|>
    assert llama3.tokenize("Hello world") == [128000, 9906, 1917]
    text = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    assert llama3.tokenize(text, add_bos=False, special=True) == [128006, 882, 128007, 271, 13347, 128009]
    plain = llama3.tokenize(text, add_bos=False, special=False)
    assert not set(plain) & set(range(128000, 128256)) and llama3.detokenize(plain) == text


@pytest.fixture(scope="module")
def tiny(tiny_gguf, tiny_checkpoints):
    """(our tokenizer from the tiny GGUF, the checkpoint's own tokenizer.json)."""
    with read_gguf(tiny_gguf) as f:
        ours = GGUFTokenizer(f.metadata)
    return ours, Tokenizer.from_file(os.path.join(tiny_checkpoints["packed"], "tokenizer.json"))


def test_tiny_equals_its_tokenizer_json(tiny):
    ours, hf = tiny
    for text in TEXTS:
        ids = hf.encode(text).ids  # bos from its post-processor, control tokens parsed
        assert ours.tokenize(text, add_bos=True, special=True) == ids, text
        assert ours.detokenize(ids) == hf.decode(ids, skip_special_tokens=False), text


def test_tiny_stops_where_its_generation_config_does(tiny, tiny_checkpoints):
    ours, _ = tiny
    with open(os.path.join(tiny_checkpoints["packed"], "generation_config.json")) as f:
        assert ours.end_ids == set(json.load(f)["eos_token_id"])


def test_tiny_special_false_reads_control_tokens_as_text(tiny):
    ours, hf = tiny
    hf.encode_special_tokens = True
    try:
        for text in TEXTS:
            ids = ours.tokenize(text, add_bos=False, special=False)
            assert ids == hf.encode(text, add_special_tokens=False).ids, text
            assert ours.detokenize(ids) == text
    finally:
        hf.encode_special_tokens = False


def test_byte_alphabet_is_the_byte_level_pre_tokenizers():
    decoder = byte_decoder()
    assert set(decoder) == set(pre_tokenizers.ByteLevel.alphabet()) and sorted(decoder.values()) == list(range(256))
    level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    for byte in range(128):  # one-byte characters pre-tokenize to their alphabet character
        assert decoder[level.pre_tokenize_str(chr(byte))[0][0]] == byte


def gguf_metadata(tok: Tokenizer, pre: str) -> dict:
    """The tokenizer.ggml.* keys a converter writes for a byte-level BPE tokenizer."""
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    tokens = [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
    added = tok.get_added_tokens_decoder()
    types = [3 if i in added else 1 for i in range(len(tokens))]  # CONTROL, NORMAL
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": tok.token_to_id("<|endoftext|>"),
        "tokenizer.ggml.add_bos_token": False,
    }


def test_gpt2_pre_tokenizer_equals_a_gpt2_style_tokenizer():
    from tokenizers import decoders, models, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's regex
    hf.decoder = decoders.ByteLevel()
    hf.train_from_iterator(
        training_text(2000, seed=5),
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    for pre in ("gpt2", "default"):
        ours = GGUFTokenizer(gguf_metadata(hf, pre))
        for text in TEXTS + ["<|endoftext|>next"]:
            ids = hf.encode(text).ids
            assert ours.tokenize(text, add_bos=True, special=True) == ids, text  # add_bos_token false: none
            assert ours.detokenize(ids) == hf.decode(ids, skip_special_tokens=False)
    with pytest.raises(ModelError, match="unsupported tokenizer.ggml.pre 'qwen2'"):
        GGUFTokenizer(gguf_metadata(hf, "qwen2"))
