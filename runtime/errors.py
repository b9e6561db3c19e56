"""The runtime's one error type: bad model files, a full context, a bad token id."""


class ModelError(ValueError):
    """A one-line message that `tritlm` prints as is (it is a ValueError, so the CLI exits 1)."""
