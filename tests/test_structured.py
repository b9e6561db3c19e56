"""Structured output (runtime/structured.py): generations under a JSON-schema token mask always parse and
validate with `jsonschema`, over many seeds of the embedded model sampled hot; the mask itself allows exactly
the tokens whose bytes continue a valid document."""

import json

import jsonschema
import numpy as np
import pytest

from tritlm.runtime.generate import Generation, TokenLoop
from tritlm.runtime.sampler import Sampler
from tritlm.runtime.structured import StructuredOutputError, TokenMask

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}, "verified": {"type": "boolean"}},
            "required": ["zip", "verified"],
            "additionalProperties": False,
        },
        "score": {"type": ["integer", "null"], "minimum": -5, "maximum": 5},
    },
    "required": ["name", "age", "role", "tags", "address", "score"],
    "additionalProperties": False,
}
N_SEEDS = 40


def constrained(model, prompt, mask: TokenMask, seed: int, max_tokens: int = 160, **sampling) -> tuple[str, bool]:
    """(text, ended with EOS) of one generation through the token loop with the mask as its logits processor.
    prompt: text or ids. Sampled from the whole distribution unless told otherwise."""
    sampler = Sampler(**({"temperature": 1.0, "top_k": 0, "top_p": 1.0} | sampling), seed=seed)
    ids = model.tokenize(prompt, add_bos=True) if isinstance(prompt, str) else prompt
    generation = Generation(model, ids, TokenLoop(model, sampler, max_tokens, logits_processors=[mask]))
    text = "".join(generation)
    return text, generation.finish == "stop"


def test_schema_output_always_validates(embedded):
    valid = 0
    for seed in range(N_SEEDS):
        text, ended = constrained(embedded, "def person():\n    return ", TokenMask.json(embedded, PERSON), seed)
        assert ended, f"seed {seed}: no end within the token budget: {text!r}"
        jsonschema.validate(json.loads(text), PERSON)
        valid += 1
    print(f"json_schema: {valid}/{N_SEEDS} outputs parse and validate")
    assert valid == N_SEEDS


def test_json_object_mode_always_parses(embedded):
    finished = []
    for seed in range(N_SEEDS // 2):
        mask = TokenMask.json(embedded)
        text, ended = constrained(
            embedded, "        self.options = ", mask, seed, max_tokens=200, temperature=0.8, top_k=40, top_p=0.95
        )
        if ended:  # an unbounded object may outgrow the budget; a finished one must parse
            assert isinstance(json.loads(text), dict), text
            finished.append(text)
        else:
            assert not mask.complete
    print(f"json_object: {len(finished)}/{N_SEEDS // 2} finished within 200 tokens, all parse")
    assert len(finished) >= N_SEEDS // 4 and any(text != "{}" for text in finished), finished


def test_mask_is_exactly_the_valid_continuations(embedded):
    """At the start of {"enum": ["yes", "no"]}, a token is allowed iff its bytes are a prefix of '"yes"' or
    '"no"' or start with one; EOS only once a whole value is there."""
    mask = TokenMask.json(embedded, {"enum": ["yes", "no"]})
    allowed = mask.allowed()
    tok = embedded.tokenizer
    for i in range(len(tok.tokens)):
        piece = tok.token_bytes(i)
        want = i not in tok.special and bool(piece) and any(word.startswith(piece) for word in (b'"yes"', b'"no"'))
        assert allowed[i] == want, (i, piece)
    for token in embedded.tokenize('"no"', add_bos=False):
        mask.accept(token)
    assert mask.complete and set(np.flatnonzero(mask.allowed())) == embedded.eos_ids


@pytest.mark.parametrize("schema", [{"type": "strin"}, {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}])
def test_bad_schema_is_an_error(embedded, schema):
    with pytest.raises(StructuredOutputError):
        TokenMask.json(embedded, schema)
