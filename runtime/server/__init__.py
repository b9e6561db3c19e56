"""`tritlm serve`: an OpenAI-compatible HTTP server with continuous batching, and its chat page.

template.py (chat templates, also used by `tritlm run --chat`), scheduler.py (the batching thread),
schemas.py (request bodies), errors.py (error bodies, API key), app.py (endpoints), cli.py (the subcommand)."""
