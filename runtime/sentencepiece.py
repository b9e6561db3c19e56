"""llama.cpp's `llama` tokenizer model (SentencePiece BPE with byte fallback: Llama 2, 1bitLLM) rebuilt from
GGUF metadata as a `tokenizers.Tokenizer` the way transformers converts a SentencePiece model: every split
of every piece into two pieces is a merge, ranked by the piece's score (highest first), spaces are "▁" with
one prepended, and text no piece covers falls back to <0xNN> byte pieces."""

from gguf import TokenType
from tokenizers import Tokenizer, models, normalizers

from tritlm.runtime.errors import ModelError

SPACE = "\u2581"


def build(tokens: list[str], types: list[int], scores: list[float]) -> Tokenizer:
    if len(scores) != len(tokens):
        raise ModelError(f"tokenizer.ggml.scores has {len(scores)} entries for {len(tokens)} tokens")
    vocab = {t: i for i, (t, kind) in enumerate(zip(tokens, types)) if kind != TokenType.UNUSED}
    unk = next((t for t, kind in zip(tokens, types) if kind == TokenType.UNKNOWN), None)
    pieces = sorted((i for i, kind in enumerate(types) if kind == TokenType.NORMAL), key=lambda i: (-scores[i], i))
    merges = [
        (tokens[i][:k], tokens[i][k:])
        for i in pieces
        for k in range(1, len(tokens[i]))
        if tokens[i][:k] in vocab and tokens[i][k:] in vocab
    ]
    tok = Tokenizer(
        models.BPE(vocab, merges, unk_token=unk, byte_fallback=True, fuse_unk=True, cache_capacity=0)
    )  # no word cache: see byte_level_bpe in runtime/tokenizer.py
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)])
    return tok


def piece_bytes(token: str, kind: int) -> bytes:
    """The bytes a piece stands for: <0xNN> is one byte, "▁" a space."""
    if kind == TokenType.BYTE:
        return bytes([int(token[3:5], 16)])
    return token.replace(SPACE, " ").encode("utf-8")
