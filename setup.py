from setuptools import setup

setup(
    name="tritlm",
    version="0.1.0",
    description="Ternary (BitNet b1.58) GGUF converter and CPU inference engine",
    # One import namespace, tritlm: the repository's converter/, runtime/ and cluster/ folders are its
    # subpackages (tritlm/__init__.py maps them the same way in a source checkout).
    packages=[
        "tritlm",
        "tritlm.converter",
        "tritlm.converter.families",
        "tritlm.runtime",
        "tritlm.runtime.server",
        "tritlm.cluster",
    ],
    package_dir={
        "tritlm": "tritlm",
        "tritlm.converter": "converter",
        "tritlm.runtime": "runtime",
        "tritlm.cluster": "cluster",
    },
    package_data={"tritlm.runtime.server": ["static/*"]},
    setup_requires=["cffi>=1.17"],
    cffi_modules=["native/_ffi_build.py:ffibuilder"],
    install_requires=[
        "cffi>=1.17",
        "numpy>=1.26",
        "gguf>=0.17",
        "tokenizers>=0.20",
        "huggingface_hub>=0.30",
        "tqdm",
        "jinja2",
        "fastapi",
        "uvicorn",
        "llguidance>=1.0",  # structured output: token masks from JSON schemas (runtime/structured.py)
        "prometheus-client",  # the server's /metrics
    ],
    extras_require={
        # torch is pinned: 2.13.0 is the CPU wheel this project's machines carry.
        "test": [
            "torch==2.13.0",
            "transformers>=5",
            "accelerate",
            "safetensors",
            "pytest",
            "openai",
            "httpx",
            "selenium",
            "jsonschema",
            "langchain-openai",
            "lm_eval",  # real clients of the server (tests/test_server_api.py, test_lm_eval.py)
            "atheris",  # make fuzz (scripts/fuzz_gguf.py)
            "ruff==0.17.6",  # pinned: a new release may add rules or reformat, failing CI on unchanged code
            "mypy==2.4.1",
        ],  # make lint, make typecheck
        # tritlm serve --replicas, tritlm batch --ray (cluster/)
        "ray": ["ray[serve,data]>=2.60"],
    },
    entry_points={"console_scripts": ["tritlm=tritlm.runtime.cli:main"]},
    python_requires=">=3.10",
)
