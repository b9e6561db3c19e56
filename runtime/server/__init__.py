"""`tritlm serve`: an OpenAI-compatible HTTP server with continuous batching, and its chat page.

scheduler.py (the batching thread; chat templates are runtime/template.py),
schemas.py (request bodies), errors.py (error bodies, API key, Host and body-size checks), app.py (endpoints),
cli.py (the subcommand)."""

MAX_BODY_BYTES = 1 << 20  # default request body limit, 1 MiB: a full 4096-token context is ~20 KB of text
DEFAULT_BATCH_SIZE = 256  # tokens per scheduler step (llama-server's --batch-size): a 2B model reads 256 in ~1 s
DEFAULT_PASS_LIMIT = 3.0  # a pass reading prompt chunks lasts about 3 one-token passes (scheduler.py)
