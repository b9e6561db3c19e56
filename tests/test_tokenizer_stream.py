"""TextStream: pushing tokens one at a time gives the detokenized text, and no piece ever ends inside a
UTF-8 character (byte-level BPE splits emoji and CJK characters across tokens)."""

from tritlm.runtime.textstream import TextStream

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


def test_flush_gives_an_incomplete_character_as_detokenize_does(model):
    ids = model.tokenize("a🦙", add_bos=False)[:-1]  # the llama's last byte token cut off
    stream = TextStream(model)
    text = "".join(stream.push(i) for i in ids)
    assert text == "a" and text + stream.flush() == model.detokenize(ids) == "a\ufffd"
    assert stream.flush() == "" and stream.push(ids[0]) == "a"  # flushed: empty, and usable again
