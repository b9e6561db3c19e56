import os

import pytest

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # transformers' BitNet layers are torch.compile'd: 6x slower
# Ray (read when it is imported): loopback only, no usage reports, no token auth on the test cluster.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """{"packed": dir, "bf16": dir}: one tiny model in both published on-disk forms."""
    from tests.checkpoints import make_tiny

    root = tmp_path_factory.mktemp("tiny")
    return {form: make_tiny(str(root / form), form) for form in ("packed", "bf16")}


@pytest.fixture(scope="session")
def tiny_gguf(tiny_checkpoints, tmp_path_factory):
    """The packed tiny checkpoint converted to an i2_s GGUF."""
    from tritlm.converter.write import convert

    path = str(tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    convert(tiny_checkpoints["packed"], path, "i2_s", progress=False)
    return path


@pytest.fixture(scope="module")
def model(tiny_gguf):
    """tiny_gguf loaded on one thread, one per test module (tests may patch its methods); modules that need
    another thread count or context define their own."""
    from tritlm.runtime import Model

    with Model(tiny_gguf, threads=1) as m:
        yield m


@pytest.fixture(scope="session")
def embedded_gguf(tmp_path_factory):
    """The embedded trained model (models/bitnet-tiny) converted to i2_s: its vocabulary and chat template are real."""
    from pathlib import Path

    from tritlm.converter.write import convert

    path = str(tmp_path_factory.mktemp("embedded") / "bitnet-tiny-i2_s.gguf")
    convert(str(Path(__file__).resolve().parent.parent / "models" / "bitnet-tiny"), path, "i2_s", progress=False)
    return path


@pytest.fixture(scope="module")
def embedded(embedded_gguf):
    """The embedded model loaded on one thread, one per test module."""
    from tritlm.runtime import Model

    with Model(embedded_gguf, threads=1) as m:
        yield m


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A Ray cluster on this machine (loopback), its files under the test's tmp dir and this checkout first on
    its workers' path; yields its address for `--ray-address`."""
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_TMPDIR", str(tmp_path_factory.mktemp("ray")))
    patch.setenv("PYTHONPATH", os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    from tritlm.cluster import connect

    ray = connect(None)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        patch.undo()
