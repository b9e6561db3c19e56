"""`tritlm serve`: load a GGUF model and serve it over HTTP until Ctrl-C."""
import ipaddress
import socket

from runtime.server import MAX_BODY_BYTES

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"]


def register(subparsers):
    p = subparsers.add_parser("serve", help="serve a model: OpenAI-compatible HTTP API and a chat page")
    p.add_argument("-m", "--model", required=True, help="the .gguf file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    p.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    p.add_argument("-c", "--ctx-size", type=int, default=None, help="context of each slot in tokens")
    p.add_argument("--parallel", type=int, default=4, help="slots: requests decoded together (default 4)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (all but /health)")
    p.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES,
                   help=f"refuse larger request bodies with 413 (default {MAX_BODY_BYTES})")
    p.add_argument("--allowed-hosts", default=None,
                   help="comma-separated Host header names to accept ('*': any; '*.example.com'); default: "
                        "localhost, 127.0.0.1 and ::1 on a loopback bind, any otherwise")
    ray = p.add_argument_group("replicas on a Ray cluster (pip install 'tritlm[ray]')")
    ray.add_argument("--replicas", type=int, default=None,
                     help="serve N copies of the app behind Ray Serve's proxy (-t: threads of each, default 1)")
    ray.add_argument("--ray-address", default=None, help="the cluster's address (default: start Ray on this machine)")
    ray.add_argument("--min-replicas", type=int, default=None, help="autoscaling: fewest replicas (default 1)")
    ray.add_argument("--max-replicas", type=int, default=None, help="autoscaling: most replicas (turns it on)")
    ray.add_argument("--target-ongoing-requests", type=int, default=None,
                     help="autoscaling: requests in flight per replica to aim for (default: --parallel)")
    p.set_defaults(func=dispatch)


def dispatch(a) -> int:
    if a.replicas is None and a.ray_address is None and a.max_replicas is None:
        return serve(a.model, a.host, a.port, a.threads, a.ctx_size, a.parallel, a.api_key, a.max_body_bytes,
                     a.allowed_hosts)
    from cluster.serve import serve_replicas  # Ray is an optional extra: imported only here
    return serve_replicas(a.model, a.host, a.port, a.threads or 1, a.ctx_size, a.parallel, a.replicas or 1,
                          a.ray_address, a.min_replicas, a.max_replicas, a.target_ongoing_requests, api_key=a.api_key,
                          max_body_bytes=a.max_body_bytes, allowed_hosts=allowed_hosts(a.host, a.allowed_hosts))


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
    return socket.create_server((host, port), family=family)


def make_server(app):
    """A uvicorn server for `app`; `.run(sockets=[sock])` serves until Ctrl-C or `.should_exit = True`."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3))


def serve(model_path, host="127.0.0.1", port=8080, threads=None, n_ctx=None, parallel=4, api_key=None,
          max_body_bytes=MAX_BODY_BYTES, hosts: str | None = None) -> int:
    from runtime import Model
    from runtime.server.app import create_app

    if max_body_bytes < 1:
        raise ValueError(f"--max-body-bytes must be at least 1, got {max_body_bytes}")
    model = Model(model_path, threads=threads, n_ctx=n_ctx)
    try:
        app = create_app(model, parallel=parallel, n_ctx=n_ctx, api_key=api_key, max_body_bytes=max_body_bytes,
                         allowed_hosts=allowed_hosts(host, hosts))
        sock = open_socket(host, port)
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{sock.getsockname()[1]}"
        auth = f" -H 'Authorization: Bearer {api_key}'" if api_key else ""
        print(f"tritlm serve: {model.name}, {parallel} slots of {app.state.server.scheduler.n_ctx} tokens\n"
              f"  chat page: {url}/\n"
              f"  try:       curl {url}/v1/chat/completions -H 'Content-Type: application/json'{auth} \\\n"
              f"               -d '{{\"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}], \"max_tokens\": 64}}'\n"
              f"  Ctrl-C stops the server.", flush=True)
        try:
            make_server(app).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: the normal way to stop
            pass
    finally:
        model.close()
    return 0
