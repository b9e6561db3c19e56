"""SRC of `tritlm convert`: a local checkpoint folder, or a Hugging Face Hub repo id downloaded (only the
files a conversion needs) into the normal Hub cache with huggingface_hub. HF_HUB_OFFLINE=1 is honoured:
then a repo id resolves from the cache only."""

import os
import re

from .errors import ConverterError

# config, weights (single or sharded) and the tokenizer; no *.bin / *.pth / optimizer states / GGUFs.
ALLOW_PATTERNS = [
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
]
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def model_name(src: str) -> str:
    """general.name of the GGUF made from src: a repo id's name, else the folder's (a Hub snapshot folder is
    named by its commit hash, which names nothing)."""
    return os.path.basename(os.path.normpath(src))


def resolve(src: str, revision: str | None = None) -> str:
    """A local folder holding the checkpoint of src."""
    if os.path.isdir(src):
        return src
    if not REPO_ID.match(src) or os.path.exists(src):
        raise ConverterError(f"{src}: no such checkpoint folder (and not a Hub repo id like owner/name)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return snapshot_download(src, revision=revision, allow_patterns=ALLOW_PATTERNS)
    except (RepositoryNotFoundError, RevisionNotFoundError) as e:
        raise ConverterError(f"{src}: {str(e).splitlines()[0]}") from None
    except LocalEntryNotFoundError:
        raise ConverterError(
            f"{src}{'@' + revision if revision else ''}: not in the Hugging Face cache and the Hub is "
            f"unreachable (offline or HF_HUB_OFFLINE=1)"
        ) from None
    except HfHubHTTPError as e:
        raise ConverterError(f"{src}: download failed: {str(e).splitlines()[0]}") from None
