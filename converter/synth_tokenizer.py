"""Llama-3-style byte-level BPE tokenizers for synthetic checkpoints: the same pre-tokenizer, decoder,
special tokens and chat template as microsoft/bitnet-b1.58-2B-4T's tokenizer, with made-up merges.

`synthetic_tokenizer(n)` has exactly n entries and needs no training (merges are all byte pairs, then
pair+byte triples, in a fixed order), so a 128256-entry tokenizer is built in seconds."""

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

from tritlm.formats import LLAMA3_SPLIT

BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
START_HEADER, END_HEADER = "<|start_header_id|>", "<|end_header_id|>"

# Llama 3's chat format; bos comes from the template, so encoding a chat must not add another.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map used by byte-level BPE (printable bytes map to themselves)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return {b: mapping[b] for b in printable + [b for b in range(256) if b not in printable]}


def special_tokens(count: int) -> list[str]:
    """Llama 3's special-token block: the named tokens at their Llama 3 offsets, reserved tokens elsewhere."""
    named = {0: BOS, 1: EOS, 6: START_HEADER, 7: END_HEADER, 9: EOT}
    if count < 10:
        raise ValueError(f"need at least 10 special tokens, got {count}")
    reserved = iter(range(count))
    return [named.get(i) or f"<|reserved_special_token_{next(reserved)}|>" for i in range(count)]


def new_llama3_bpe(vocab: dict[str, int] | None = None, merges: list[tuple[str, str]] | None = None) -> Tokenizer:
    """A byte-level BPE tokenizer with Llama 3's pre-tokenizer and decoder; empty if no vocab is given
    (ready for `tokenizers.trainers.BpeTrainer`)."""
    tok = Tokenizer(models.BPE(vocab, merges) if vocab is not None else models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def finish_llama3(tok: Tokenizer, n_special: int) -> Tokenizer:
    """Appends the special-token block after the BPE vocabulary and adds bos to every encoding, as Llama 3."""
    tok.add_special_tokens(special_tokens(n_special))
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
            ),
        ]
    )
    return tok


def synthetic_tokenizer(vocab_size: int) -> Tokenizer:
    """A Llama-3-style tokenizer with exactly vocab_size entries, built without training."""
    n_special = min(256, vocab_size // 16)
    n_merges = vocab_size - 256 - n_special
    if n_special < 10 or n_merges < 0:
        raise ValueError(f"vocab_size {vocab_size} is too small for a byte-level tokenizer (need >= 266)")
    chars = bytes_to_unicode()
    # Frequent bytes first so the earliest (highest-priority) merges are plausible English pieces.
    frequent = b" etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLUCMFWYPVBGKJQXZ0123456789.,'\"-\n!?:;()"
    order = [chars[b] for b in frequent] + [c for b, c in chars.items() if b not in frequent]
    vocab = {c: i for i, c in enumerate(chars.values())}
    merges: list[tuple[str, str]] = []
    pairs = ((a, b) for a in order for b in order)
    triples = ((a + b, c) for a in order for b in order for c in order)
    for left, right in (p for source in (pairs, triples) for p in source):
        if len(merges) == n_merges:
            break
        merges.append((left, right))
        vocab[left + right] = len(vocab)
    return finish_llama3(new_llama3_bpe(vocab, merges), n_special)


def tokenizer_config(tok: Tokenizer, model_max_length: int) -> dict:
    """tokenizer_config.json as transformers writes it for a Llama-3-style fast tokenizer."""
    added = {
        str(t_id): {
            "content": t.content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t_id, t in sorted(tok.get_added_tokens_decoder().items())
    }
    return {
        "added_tokens_decoder": added,
        "bos_token": BOS,
        "eos_token": EOT,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": model_max_length,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


# Llama 2's SentencePiece BPE as tokenizer.json holds it (1bitLLM's tokenizer): "▁" for spaces, a "▁" prefix,
# byte-fallback pieces <0x00>..<0xFF>, and merges listing every split of every piece (as transformers
# converts a SentencePiece model), so merge priority is the piece's rank.
SPM_UNK, SPM_BOS, SPM_EOS, SPM_SPACE = "<unk>", "<s>", "</s>", "\u2581"
SPM_ADDED = ("<pad>",)  # appended after the pieces, as 1bitLLM's vocab of 32000 + extras


def sentencepiece_bpe(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    """A Llama-2-style tokenizer over the given pieces (specials, bytes, characters, merged pieces)."""
    from tokenizers import normalizers

    tok = Tokenizer(models.BPE(vocab, merges, unk_token=SPM_UNK, byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPM_SPACE), normalizers.Replace(" ", SPM_SPACE)])
    tok.decoder = decoders.Sequence(
        [decoders.Replace(SPM_SPACE, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([SPM_UNK, SPM_BOS, SPM_EOS])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SPM_BOS} $A", pair=f"{SPM_BOS} $A {SPM_BOS} $B", special_tokens=[(SPM_BOS, vocab[SPM_BOS])]
    )
    return tok


def synthetic_sentencepiece(vocab_size: int) -> Tokenizer:
    """A Llama-2-style tokenizer with exactly vocab_size entries: 3 specials, 256 bytes, common characters,
    then pieces made by joining earlier pieces in a fixed order, then the added tokens."""
    chars = SPM_SPACE + "etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLUCMFWYPVBGKJQXZ0123456789.,'\"-!?:;()"
    n_pieces = vocab_size - len(SPM_ADDED)
    pieces = [SPM_UNK, SPM_BOS, SPM_EOS] + [f"<0x{b:02X}>" for b in range(256)] + list(chars)
    if n_pieces < len(pieces):
        raise ValueError(
            f"vocab_size {vocab_size} is too small for a SentencePiece tokenizer (need >= {len(pieces) + 1})"
        )
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = []
    candidates = ((a, b) for a in chars for b in chars)
    candidates = (
        c for source in (candidates, ((a + b, c) for a in chars for b in chars for c in chars)) for c in source
    )
    for left, right in candidates:
        if len(vocab) == n_pieces:
            break
        piece = left + right
        if piece in vocab:
            continue
        vocab[piece] = len(vocab)
        merges += [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
    tok = sentencepiece_bpe(vocab, merges)
    tok.add_tokens(list(SPM_ADDED))
    return tok


def sentencepiece_tokenizer_config(tok: Tokenizer, model_max_length: int) -> dict:
    """tokenizer_config.json as transformers writes it for a Llama-2 tokenizer."""
    added = {
        str(t_id): {
            "content": t.content,
            "lstrip": False,
            "normalized": not t.special,
            "rstrip": False,
            "single_word": False,
            "special": t.special,
        }
        for t_id, t in sorted(tok.get_added_tokens_decoder().items())
    }
    return {
        "added_tokens_decoder": added,
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": SPM_BOS,
        "eos_token": SPM_EOS,
        "unk_token": SPM_UNK,
        "pad_token": SPM_ADDED[0],
        "legacy": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "tokenizer_class": "LlamaTokenizer",
    }
