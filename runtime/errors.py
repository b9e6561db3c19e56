"""The runtime's error types for bad input. The `tritlm` commands print them as one line and exit 1; any other
exception out of a command is a bug and keeps its traceback."""


class InputError(ValueError):
    """Input the runtime cannot use (an argument, a file it cannot read, a prompt), as a one-line message. A
    ValueError, so library callers may catch either."""


class ModelError(InputError):
    """A bad model file, a full context, a bad token id."""
