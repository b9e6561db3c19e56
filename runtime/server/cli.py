"""`tritlm serve`: load a GGUF model (or fetch and convert one from the Hub with -hf) and serve it over HTTP until
Ctrl-C."""

import ipaddress
import logging
import socket
from collections.abc import Sequence

from tritlm.converter.errors import ConverterError
from tritlm.runtime.cli import add_model_options
from tritlm.runtime.errors import InputError
from tritlm.runtime.server import DEFAULT_BATCH_SIZE, DEFAULT_PASS_LIMIT, MAX_BODY_BYTES

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"]
LOG_LEVELS = ("debug", "info", "warning", "error")


def register(subparsers):
    p = subparsers.add_parser("serve", help="serve a model: OpenAI-compatible HTTP API and a chat page")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("-m", "--model", help="the .gguf file")
    source.add_argument(
        "-hf",
        "--hf-repo",
        metavar="REPO[:TYPE]",
        help="a Hub repo id (or checkpoint folder): downloaded, converted once into the cache "
        "($TRITLM_CACHE, default ~/.cache/tritlm) as TYPE (default i2_s), then served",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    p.add_argument("-c", "--ctx-size", type=int, default=None, help="context of each slot in tokens")
    p.add_argument("--parallel", type=int, default=4, help="slots: requests decoded together (default 4)")
    p.add_argument(
        "-b",
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="tokens per step: every slot's next token plus prompt chunks up to this many "
        f"(default {DEFAULT_BATCH_SIZE})",
    )
    p.add_argument(
        "--pass-limit",
        type=float,
        default=DEFAULT_PASS_LIMIT,
        help="prompt chunks are also cut so a pass lasts about this many one-token passes, which bounds how long "
        f"a new request waits for the pass under way (default {DEFAULT_PASS_LIMIT:g}; 0: by -b tokens only)",
    )
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (all but /health)")
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=MAX_BODY_BYTES,
        help=f"refuse larger request bodies with 413 (default {MAX_BODY_BYTES})",
    )
    p.add_argument(
        "--allowed-hosts",
        default=None,
        help="comma-separated Host header names to accept ('*': any; '*.example.com'); default: "
        "localhost, 127.0.0.1 and ::1 on a loopback bind, any otherwise",
    )
    p.add_argument(
        "--cors-origin",
        default="*",
        help="comma-separated origins whose web pages may call the API ('*': any, the default, as "
        "llama-server; '': none)",
    )
    p.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="server log on stderr: 'info' logs one line per request (default info)",
    )
    add_model_options(p)
    ray = p.add_argument_group("replicas on a Ray cluster (pip install 'tritlm[ray]')")
    ray.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="serve N copies of the app behind Ray Serve's proxy (-t: threads of each, default 1)",
    )
    ray.add_argument("--ray-address", default=None, help="the cluster's address (default: start Ray on this machine)")
    ray.add_argument("--min-replicas", type=int, default=None, help="autoscaling: fewest replicas (default 1)")
    ray.add_argument("--max-replicas", type=int, default=None, help="autoscaling: most replicas (turns it on)")
    ray.add_argument(
        "--target-ongoing-requests",
        type=int,
        default=None,
        help="autoscaling: requests in flight per replica to aim for (default: --parallel)",
    )
    p.set_defaults(func=dispatch, errors=(InputError, ConverterError))  # ConverterError: -hf's conversion


def dispatch(a) -> int:
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = a.model if a.model is not None else hub_gguf(a.hf_repo)
    cors = [o.strip() for o in a.cors_origin.split(",") if o.strip()]
    if a.replicas is None and a.ray_address is None and a.max_replicas is None:
        return serve(
            path,
            a.host,
            a.port,
            a.threads,
            a.ctx_size,
            a.parallel,
            a.api_key,
            a.max_body_bytes,
            a.allowed_hosts,
            cors,
            a.batch_size,
            a.act_topk,
            not a.no_sparse,
            a.pass_limit,
            a.mmap,
            a.cache_type,
        )
    if a.act_topk is not None or a.no_sparse or a.cache_type:
        raise InputError("--act-topk, --no-sparse and --cache-type are not supported with Ray replicas")
    from tritlm.cluster.serve import serve_replicas  # Ray is an optional extra: imported only here

    return serve_replicas(
        path,
        a.host,
        a.port,
        a.threads or 1,
        a.ctx_size,
        a.parallel,
        a.replicas or 1,
        a.ray_address,
        a.min_replicas,
        a.max_replicas,
        a.target_ongoing_requests,
        api_key=a.api_key,
        max_body_bytes=a.max_body_bytes,
        allowed_hosts=allowed_hosts(a.host, a.allowed_hosts),
        cors_origins=cors,
        batch_size=a.batch_size,
        pass_limit=a.pass_limit or None,
    )


def hub_gguf(spec: str) -> str:
    """-hf REPO[:TYPE] -> the cached GGUF, converted on first use."""
    from tritlm.converter.cached import cached_gguf
    from tritlm.converter.pack import OUTPUT_TYPES

    repo, _, qtype = spec.partition(":")
    qtype = qtype or "i2_s"
    if qtype not in OUTPUT_TYPES:
        raise InputError(f"-hf {spec}: unknown type {qtype!r} (choose one of {', '.join(OUTPUT_TYPES)})")
    return cached_gguf(repo, qtype)


def allowed_hosts(bind: str, option: str | None) -> list[str] | None:
    """The --allowed-hosts list; by default a loopback server answers only to loopback names (a web page whose
    DNS name is rebound to 127.0.0.1 would otherwise reach it), any other bind to any name."""
    if option is not None:
        return [h.strip() for h in option.split(",") if h.strip()]
    try:
        loopback = bind == "localhost" or ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = False
    return LOOPBACK_NAMES if loopback else None


def open_socket(host: str, port: int) -> socket.socket:
    """Binds before the banner is printed, so the URL works as soon as it is shown (and port 0 gets a real port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as e:  # the port in use, a privileged port, an address not of this machine
        raise InputError(f"cannot listen on {host} port {port}: {e.strerror or e}") from None


def make_server(app):
    """A uvicorn server for `app`; `.run(sockets=[sock])` serves until Ctrl-C or `.should_exit = True`."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3))


def serve(
    model_path,
    host="127.0.0.1",
    port=8080,
    threads=None,
    n_ctx=None,
    parallel=4,
    api_key=None,
    max_body_bytes=MAX_BODY_BYTES,
    hosts: str | None = None,
    cors_origins: Sequence[str] | None = ("*",),
    batch_size=DEFAULT_BATCH_SIZE,
    act_topk: float | None = None,
    sparse: bool = True,
    pass_limit: float = DEFAULT_PASS_LIMIT,
    use_mmap: bool = False,
    kv_type: str | None = None,
) -> int:
    from tritlm.runtime import Model
    from tritlm.runtime.server.app import create_app

    if max_body_bytes < 1:
        raise InputError(f"--max-body-bytes must be at least 1, got {max_body_bytes}")
    model = Model(
        model_path, threads=threads, n_ctx=n_ctx, act_topk=act_topk, sparse=sparse, use_mmap=use_mmap, kv_type=kv_type
    )
    try:
        app = create_app(
            model,
            parallel=parallel,
            n_ctx=n_ctx,
            api_key=api_key,
            max_body_bytes=max_body_bytes,
            allowed_hosts=allowed_hosts(host, hosts),
            cors_origins=list(cors_origins or []),
            batch_size=batch_size,
            pass_limit=pass_limit or None,
        )
        sock = open_socket(host, port)
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{sock.getsockname()[1]}"
        auth = f" -H 'Authorization: Bearer {api_key}'" if api_key else ""
        print(
            f"tritlm serve: {model.name}, {parallel} slots of {app.state.server.scheduler.n_ctx} tokens\n"
            f"  chat page: {url}/\n"
            f"  try:       curl {url}/v1/chat/completions -H 'Content-Type: application/json'{auth} \\\n"
            f'               -d \'{{"messages": [{{"role": "user", "content": "Hello!"}}], "max_tokens": 64}}\'\n'
            f"  Ctrl-C stops the server.",
            flush=True,
        )
        try:
            make_server(app).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: the normal way to stop
            pass
    finally:
        model.close()
    return 0
