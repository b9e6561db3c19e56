"""tritlm's runtime: `Model` loads a ternary GGUF file into the C engine (runtime/model.py).

Model is imported on first use, so `tritlm --help` does not load the engine."""

from tritlm.runtime.errors import ModelError


def __getattr__(name):
    if name == "Model":
        from tritlm.runtime.model import Model

        return Model
    raise AttributeError(f"module 'tritlm.runtime' has no attribute {name!r}")


__all__ = ["Model", "ModelError"]
