"""The converter's one error type for bad input (a checkpoint, config, tokenizer or path it cannot use)."""


class ConverterError(Exception):
    """A one-line message that `tritlm convert` prints as is, exiting 1. Anything else raised while converting
    is a bug and ends in a traceback."""
