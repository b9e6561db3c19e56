"""Download-and-convert once: the GGUF of a checkpoint (a folder or a Hub repo id) kept in a cache folder as
<name>.<type>.gguf and reused while it is newer than every file of the checkpoint it came from. `tritlm serve
-hf REPO` and scripts/setup_and_serve.py both go through here, so they share one naming scheme."""

import os

from tritlm.converter.hub import model_name, resolve


def default_cache_dir() -> str:
    """$TRITLM_CACHE, else tritlm/ under $XDG_CACHE_HOME (~/.cache)."""
    return os.environ.get("TRITLM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tritlm"
    )


def gguf_name(source: str, qtype: str) -> str:
    """<name>.<type>.gguf: a repo id's last part, or a folder's name."""
    return f"{os.path.basename(os.path.normpath(source))}.{qtype}.gguf"


def is_up_to_date(gguf_path: str, checkpoint: str) -> bool:
    """The GGUF exists and is newer than every file of the checkpoint it came from."""
    if not os.path.exists(gguf_path):
        return False
    newest = max(os.path.getmtime(os.path.join(checkpoint, f)) for f in os.listdir(checkpoint))
    return os.path.getmtime(gguf_path) >= newest


def cached_gguf(
    source: str, qtype: str = "i2_s", cache_dir: str | None = None, revision: str | None = None, progress: bool = True
) -> str:
    """The path of source's GGUF in cache_dir, downloading (Hub repo) and converting only when needed."""
    from tritlm.converter.write import convert

    checkpoint = resolve(source, revision)
    cache_dir = cache_dir or default_cache_dir()
    path = os.path.join(cache_dir, gguf_name(source, qtype))
    if is_up_to_date(path, checkpoint):
        if progress:
            print(f"{path} is up to date", flush=True)
        return path
    os.makedirs(cache_dir, exist_ok=True)
    if progress:
        print(f"converting {checkpoint} -> {path}", flush=True)
    convert(checkpoint, path, qtype, progress=progress, name=model_name(source))
    return path
