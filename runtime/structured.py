"""Structured output: a token mask that keeps a generation inside a grammar (a JSON schema, or any JSON object),
computed by llguidance over the model's own vocabulary. llguidance is the constrained-decoding library
llama.cpp uses; it needs only the token bytes and a tokenize function (no torch, unlike xgrammar), takes JSON
schemas directly, and computes a mask in tens of microseconds, so the sampler sees -inf for every token that
cannot continue a valid document. A finished document leaves only the end-of-sequence tokens allowed.

A TokenMask is one of TokenLoop's logits processors (runtime/generate.py): called with the completion so far,
it takes in the tokens chosen since its last call, then masks a copy of the logits."""

import weakref
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported when first used, like llguidance itself below
    import llguidance

    from tritlm.runtime.model import Model

ANY_JSON_OBJECT = {"type": "object"}

_tokenizers: "weakref.WeakKeyDictionary[Model, llguidance.LLTokenizer]" = weakref.WeakKeyDictionary()  # once per model


class StructuredOutputError(ValueError):
    """The schema cannot be compiled into a grammar (the message says why)."""


def grammar_from_schema(schema: dict | None = None) -> str:
    """The llguidance grammar of JSON documents valid under `schema` (None: any JSON object)."""
    import llguidance

    try:
        return llguidance.LLMatcher.grammar_from_json_schema(
            ANY_JSON_OBJECT if schema is None else schema,
            # Compact JSON (`{"a": 1, "b": [2, 3]}`): with free whitespace a small model can spend its tokens on newlines.
            overrides={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "},
        )
    except (ValueError, TypeError) as e:
        raise StructuredOutputError(f"bad JSON schema: {e}") from None


def lltokenizer(model):
    """llguidance's view of the model's vocabulary: each id's bytes (control tokens marked with a 0xFF prefix, as
    llguidance expects, so no text can produce them) and the model's own tokenizer for the text it forces."""
    import llguidance

    if model not in _tokenizers:
        tok = model.tokenizer
        special = sorted(tok.special)
        pieces = [tok.token_bytes(i) for i in range(len(tok.tokens))] + [b""] * (model.n_vocab - len(tok.tokens))
        for i in special:
            pieces[i] = b"\xff" + pieces[i]

        class Vocabulary:  # what llguidance.TokenizerWrapper reads
            eos_token_id = min(model.eos_ids)
            bos_token_id = model.bos_id
            tokens = pieces
            special_token_ids = special

            def __call__(self, text):
                return model.tokenize(
                    text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text, add_bos=False
                )

        _tokenizers[model] = llguidance.LLTokenizer(
            llguidance.TokenizerWrapper(Vocabulary()), n_vocab=model.n_vocab, eos_token=sorted(model.eos_ids)
        )
    return _tokenizers[model]


class TokenMask:
    """One generation's position in a grammar: which tokens may come next."""

    def __init__(self, model, grammar: str):
        import llguidance

        tokenizer = lltokenizer(model)
        error = llguidance.LLMatcher.validate_grammar(grammar, tokenizer)
        if error and not error.startswith("WARNING"):
            raise StructuredOutputError(error)
        self.matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if self.matcher.is_error():
            raise StructuredOutputError(self.matcher.get_error())
        self.n_vocab = model.n_vocab
        self.n_accepted = 0
        self._bits = np.empty((self.n_vocab + 31) // 32, dtype=np.int32)

    @classmethod
    def json(cls, model, schema: dict | None = None) -> "TokenMask":
        """JSON valid under `schema`; None: any JSON object (OpenAI's json_object mode)."""
        return cls(model, grammar_from_schema(schema))

    def allowed(self) -> np.ndarray:
        """Bool [n_vocab]: the tokens that keep the text a prefix of a valid document (EOS once it is complete)."""
        self.matcher.unsafe_compute_mask_ptr(self._bits.ctypes.data, self._bits.nbytes)
        if self.matcher.is_error():
            raise StructuredOutputError(f"grammar: {self.matcher.get_error()}")
        return np.unpackbits(self._bits.view(np.uint8), bitorder="little")[: self.n_vocab].astype(bool)

    def __call__(self, tokens: list[int], logits) -> np.ndarray:
        """The logits (a copy) with every token the grammar forbids next at -inf."""
        for token in tokens[self.n_accepted :]:
            self.accept(token)
        logits = np.array(logits, dtype=np.float32)
        logits[~self.allowed()] = -np.inf
        return logits

    def accept(self, token: int) -> None:
        if not self.matcher.consume_token(int(token)):
            raise StructuredOutputError(f"grammar: token {token} rejected: {self.matcher.get_error()}")
        self.n_accepted += 1

    @property
    def complete(self) -> bool:
        """The text so far is a whole valid document."""
        return self.matcher.is_accepting()
