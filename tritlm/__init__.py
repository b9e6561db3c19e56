"""tritlm: ternary (BitNet b1.58) language models on CPUs. `from tritlm import Model` loads a GGUF file into the C
engine (tritlm.runtime); tritlm.converter writes them, tritlm.formats is the table of tensor types both share.

One import namespace: the repository keeps converter/, runtime/ and cluster/ at its top, and they are this
package's subpackages. An install maps them there (setup.py's package_dir); in a source checkout this package's
path also covers the folder above it, so `tritlm.runtime` is runtime/ without installing. Nothing is importable
as a bare `runtime` or `converter`, so a user's own folders of those names cannot shadow ours."""

import os

_here = os.path.dirname(os.path.abspath(__file__))
if not os.path.isdir(os.path.join(_here, "runtime")):  # a source checkout: the subpackages sit beside this folder
    __path__.append(os.path.dirname(_here))


def __getattr__(name):
    # Imported on first use: `tritlm --help` does not load the engine, and the converter never loads the runtime.
    if name == "Model":
        from tritlm.runtime.model import Model

        return Model
    if name == "ModelError":
        from tritlm.runtime.errors import ModelError

        return ModelError
    raise AttributeError(f"module 'tritlm' has no attribute {name!r}")


__all__ = ["Model", "ModelError"]
