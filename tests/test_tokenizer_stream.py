"""TextStream: pushing tokens one at a time gives the detokenized text, and no piece ever ends inside a
UTF-8 character (byte-level BPE splits emoji and CJK characters across tokens)."""
from runtime.textstream import TextStream

TEXT = "Zürich 日本語 emoji 🙂🦙 👩‍👩‍👧 naïve café ✅ done"


def test_pieces_join_to_the_text(model):
    ids = model.tokenize(TEXT, add_bos=False)
    assert len(ids) > len(TEXT.split())  # the tiny vocabulary splits the non-ASCII characters into bytes
    stream = TextStream(model)
    pieces = [stream.push(i) for i in ids]
    assert "".join(pieces) == TEXT == model.detokenize(ids)
    assert "" in pieces  # some tokens end mid-character: held back
    assert all("\ufffd" not in p for p in pieces)


def test_held_back_bytes_are_released_whole(model):
    ids = model.tokenize("🦙", add_bos=False)
    assert len(ids) > 1
    stream = TextStream(model)
    assert [stream.push(i) for i in ids] == [""] * (len(ids) - 1) + ["🦙"]
