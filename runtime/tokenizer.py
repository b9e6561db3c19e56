"""The model's tokenizer, rebuilt from GGUF metadata as a `tokenizers.Tokenizer` so it splits text exactly as
the source checkpoint's Hugging Face tokenizer: byte-level BPE (`tokenizer.ggml.model` = gpt2) with the
pre-tokenizer named by `tokenizer.ggml.pre`, or SentencePiece BPE (`llama`: runtime/sentencepiece.py);
control tokens as special tokens.

Decoding goes through each token's bytes (byte-level BPE tokens are bytes spelled as printable characters;
SentencePiece pieces are text with "▁" for a space, or <0xNN> bytes), so a stream can hold back half a UTF-8 character (runtime/textstream.py)."""

import threading

import numpy as np
from gguf import TokenType
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from tritlm.formats import PRE_TOKENIZER_SPLITS
from tritlm.runtime import sentencepiece
from tritlm.runtime.errors import ModelError

SUPPORTED_PRE = ("llama-bpe", "gpt2", "default")
# Control tokens that end a generation wherever a vocabulary has them (found by text, as llama.cpp does):
# Llama 3's generation_config stops at <|end_of_text|> and <|eot_id|> while GGUF names one eos.
END_OF_GENERATION = {
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "</s>",
    "<|endoftext|>",
    "<|im_end|>",
    "<end_of_turn>",
}


def pre_tokenizer(pre: str):
    """(pre-tokenizer, ignore_merges) for a `tokenizer.ggml.pre` name."""
    if pre == "llama-bpe":
        # Llama 3's tokenizer.json sets ignore_merges: a whole word found in the vocabulary is one token.
        split = pre_tokenizers.Split(Regex(PRE_TOKENIZER_SPLITS[pre]), behavior="isolated", invert=False)
        return pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), True
    if pre in ("gpt2", "default"):  # GPT-2's own regex, built into the ByteLevel pre-tokenizer
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), False
    raise ModelError(f"unsupported tokenizer.ggml.pre {pre!r} (supported: {', '.join(SUPPORTED_PRE)})")


def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet inverted: the printable character that spells each byte -> the byte."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in printable]
    chars = {b: chr(b) for b in printable} | {b: chr(256 + i) for i, b in enumerate(others)}
    return {char: byte for byte, char in chars.items()}


def byte_level_bpe(metadata: dict, tokens: list[str], types: list[int]) -> Tokenizer:
    pre, ignore_merges = pre_tokenizer(metadata.get("tokenizer.ggml.pre", "default"))
    # Unused (padding) ids stay out of the vocabulary: no text maps to them.
    vocab = {token: i for i, (token, kind) in enumerate(zip(tokens, types)) if kind != TokenType.UNUSED}
    merges = []
    for merge in metadata.get("tokenizer.ggml.merges", []):
        pair = merge.split(" ")
        if len(pair) != 2:
            raise ModelError(f"bad tokenizer.ggml.merges entry {merge!r} (want 'left right')")
        merges.append((pair[0], pair[1]))
    try:
        # No word cache (cache_capacity=0): its entries, allocated amid a long text's temporaries, kept that
        # text's freed memory from going back to the system; uncached encoding measured as fast.
        tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=ignore_merges, cache_capacity=0))
    except Exception as e:  # tokenizers raises plain Exceptions for merges naming unknown tokens
        raise ModelError(f"bad tokenizer in the GGUF file: {e}") from None
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    return tok


class GGUFTokenizer:
    """tokenize/detokenize from the `tokenizer.ggml.*` keys of a GGUF file's metadata."""

    def __init__(self, metadata: dict):
        model = metadata.get("tokenizer.ggml.model")
        if model not in ("gpt2", "llama"):
            raise ModelError(
                f"unsupported tokenizer.ggml.model {model!r} (supported: gpt2, byte-level BPE; "
                f"llama, SentencePiece BPE)"
            )
        self.sentencepiece = model == "llama"  # runtime/sentencepiece.py
        tokens = metadata.get("tokenizer.ggml.tokens")
        if not tokens:
            raise ModelError("the GGUF file has no tokenizer.ggml.tokens")
        # the parser checked each key's type (runtime/gguf.py KEY_KINDS); numeric arrays are numpy arrays
        types = metadata.get("tokenizer.ggml.token_type")
        if types is not None and len(types) != len(tokens):
            raise ModelError(f"tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens")
        types = [TokenType.NORMAL] * len(tokens) if types is None else np.asarray(types).tolist()
        self.tokens, self.types = tokens, types
        if self.sentencepiece:
            scores = metadata.get("tokenizer.ggml.scores")
            if scores is None or len(scores) != len(tokens):
                raise ModelError(
                    f"tokenizer.ggml.scores has {0 if scores is None else len(scores)} entries for {len(tokens)} tokens"
                )
            self._tok = sentencepiece.build(tokens, types, np.asarray(scores).tolist())
        else:
            self._tok = byte_level_bpe(metadata, tokens, types)
        self.special = {i for i, kind in enumerate(types) if kind == TokenType.CONTROL}
        self._added = {i for i, kind in enumerate(types) if kind in (TokenType.CONTROL, TokenType.USER_DEFINED)}
        self._tok.add_special_tokens(
            [AddedToken(tokens[i], special=True, normalized=False) for i in sorted(self.special)]
        )
        self._tok.add_tokens(
            [AddedToken(tokens[i], special=False, normalized=False) for i in sorted(self._added - self.special)]
        )
        self.bos_id = self._token_id(metadata, "bos")
        self.eos_id = self._token_id(metadata, "eos")
        self.eot_id = self._token_id(metadata, "eot")
        self.end_ids = {i for i in (self.eos_id, self.eot_id) if i is not None} | {
            i for i in self.special if tokens[i] in END_OF_GENERATION
        }
        self.add_bos = bool(metadata.get("tokenizer.ggml.add_bos_token", self.bos_id is not None))
        self._bytes_of = byte_decoder()
        self._lock = threading.Lock()  # encode_special_tokens is a setting of the shared Tokenizer

    def _token_id(self, metadata: dict, name: str) -> int | None:
        token_id = metadata.get(f"tokenizer.ggml.{name}_token_id")
        if token_id is not None and not 0 <= token_id < len(self.tokens):
            raise ModelError(
                f"tokenizer.ggml.{name}_token_id {token_id} is not a token id (vocabulary of {len(self.tokens)})"
            )
        return token_id

    def tokenize(self, text: str, add_bos: bool = True, special: bool = False) -> list[int]:
        """Token ids of text; special=True reads control tokens such as <|eot_id|> in the text as themselves."""
        with self._lock:
            self._tok.encode_special_tokens = not special
            # encode_batch releases the GIL (encode holds it): a long text does not stall the other threads
            # (the server tokenizes in worker threads so its event loop keeps answering).
            ids = self._tok.encode_batch([text], add_special_tokens=False)[0].ids
        return [self.bos_id] + ids if add_bos and self.add_bos and self.bos_id is not None else ids

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for: an added token's text, or the bytes a vocabulary piece spells."""
        if not 0 <= token_id < len(self.tokens):
            raise ModelError(f"token id {token_id} is out of range (vocabulary of {len(self.tokens)})")
        token = self.tokens[token_id]
        if token_id in self._added:
            return token.encode("utf-8")
        if self.types[token_id] == TokenType.UNUSED:
            return b""
        if self.sentencepiece:
            return sentencepiece.piece_bytes(token, self.types[token_id])
        try:
            return bytes(self._bytes_of[c] for c in token)
        except KeyError:  # as HF's ByteLevel decoder: a character outside the alphabet stands for itself
            return b"".join(bytes([self._bytes_of[c]]) if c in self._bytes_of else c.encode("utf-8") for c in token)

    def detokenize(self, ids) -> str:
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")
