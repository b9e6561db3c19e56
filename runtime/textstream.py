"""Incremental detokenization: the text of each new token as soon as it is complete. A token may end in the
middle of a UTF-8 character (byte-level BPE splits emoji and CJK into byte tokens); those bytes are held back
until the character is whole, so no piece ever carries half a character. At the end, flush() gives what is
still held (an incomplete character as U+FFFD, as detokenize does)."""

import codecs


class TextStream:
    def __init__(self, model):
        self.tokenizer = model.tokenizer
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # invalid bytes -> U+FFFD

    def push(self, token_id: int) -> str:
        """The text completed by this token ('' while a character is still incomplete)."""
        return self.decoder.decode(self.tokenizer.token_bytes(token_id))

    def flush(self) -> str:
        """The bytes still held back ('' or U+FFFD for an incomplete character); the stream can be reused."""
        return self.decoder.decode(b"", final=True)
