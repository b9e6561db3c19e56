"""The checkpoint's tokenizer as GGUF metadata (docs/format.md): tokens, token types and the pre-tokenizer
name from tokenizer.json via `tokenizers`; merges, special-token ids and chat template via gguf-py's
SpecialVocab. Byte-level BPE (Llama 3) is written as llama.cpp's `gpt2` model; SentencePiece BPE with byte
fallback (Llama 2, 1bitLLM) as its `llama` model, with scores."""

import json
import os
import re
from collections.abc import Sequence

import gguf

from tritlm.formats import PRE_TOKENIZER_SPLITS

from .errors import ConverterError

BYTE_TOKEN = re.compile(r"^<0x[0-9A-F]{2}>$")  # SentencePiece's byte-fallback pieces

# pre-tokenizer split regex -> llama.cpp's name for it
PRE_TOKENIZERS = {regex: name for name, regex in PRE_TOKENIZER_SPLITS.items()}


def pre_tokenizer_name(tokenizer_json: dict) -> str:
    pre = tokenizer_json.get("pre_tokenizer") or {}
    for step in pre.get("pretokenizers", [pre]):
        regex = (step.get("pattern") or {}).get("Regex")
        if step.get("type") == "Split" and regex in PRE_TOKENIZERS:
            return PRE_TOKENIZERS[regex]
    raise ConverterError("tokenizer.json: unsupported pre-tokenizer (supported: Llama 3's byte-level BPE split)")


def sentencepiece_scores(tokens: list[str], types: Sequence[int], merges: list) -> list[float]:
    """llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined piece scores highest; a
    piece's score is minus the rank of the first merge that makes it, so the priorities are the merges'.
    Pieces no merge makes (characters, bytes) come last; user-defined tokens get llama.cpp's -1000."""
    rank: dict[str, int] = {}  # piece -> rank of the first merge that makes it
    for r, merge in enumerate(merges):
        rank.setdefault("".join(merge.split(" ", 1) if isinstance(merge, str) else merge), r)
    return [
        -1000.0
        if kind == gguf.TokenType.USER_DEFINED
        else 0.0
        if kind != gguf.TokenType.NORMAL
        else -float(rank.get(token, len(merges)))
        for token, kind in zip(tokens, types)
    ]


def add_tokenizer(writer: gguf.GGUFWriter, path: str, n_vocab: int) -> None:
    """Adds the tokenizer of checkpoint folder path; ids the tokenizer lacks up to n_vocab become unused
    padding tokens (the embedding may be larger than the vocabulary)."""
    from tokenizers import Tokenizer

    tokenizer_path = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(tokenizer_path):
        raise ConverterError(f"{path}: no tokenizer.json (the converter needs the checkpoint's tokenizer)")
    with open(tokenizer_path, encoding="utf-8") as f:
        tokenizer_json = json.load(f)
    model = tokenizer_json.get("model") or {}
    if model.get("type") != "BPE":
        raise ConverterError("tokenizer.json: only BPE tokenizers are supported")
    tok = Tokenizer.from_file(tokenizer_path)
    if tok.get_vocab_size() > n_vocab:
        raise ConverterError(f"tokenizer.json has {tok.get_vocab_size()} tokens, more than vocab_size {n_vocab}")
    sentencepiece = bool(model.get("byte_fallback"))  # Llama-2's SentencePiece BPE, as tokenizer.json holds it
    added = tok.get_added_tokens_decoder()
    tokens, types = [], []
    for i in range(n_vocab):
        token = tok.id_to_token(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(
                gguf.TokenType.BYTE
                if sentencepiece and BYTE_TOKEN.match(token)
                else gguf.TokenType.UNKNOWN
                if token == model.get("unk_token")
                else gguf.TokenType.NORMAL
            )
    if sentencepiece:
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_scores(sentencepiece_scores(tokens, types, model.get("merges") or []))
    else:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer_json))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(path, load_merges=not sentencepiece, n_vocab=n_vocab)
    special.add_to_gguf(writer)
    eot = tok.token_to_id("<|eot_id|>")
    if eot is not None:
        writer.add_eot_token_id(eot)
