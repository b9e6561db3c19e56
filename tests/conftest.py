import os

import pytest

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # transformers' BitNet layers are torch.compile'd: 6x slower


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """{"packed": dir, "bf16": dir}: one tiny model in both published on-disk forms."""
    from tests.checkpoints import make_tiny
    root = tmp_path_factory.mktemp("tiny")
    return {form: make_tiny(str(root / form), form) for form in ("packed", "bf16")}
