"""`tritlm serve --replicas N`: the server's FastAPI app (runtime.server.app.create_app, unchanged) as a Ray Serve
deployment. Each replica is a Ray actor holding its own Model over the same GGUF file (mmapped: one copy in
each node's page cache) and its own --parallel slots; Ray's proxy spreads requests over them, restarts a
replica that dies (its in-flight requests fail with a 5xx, the others go on) and, with --max-replicas,
adds and removes replicas to keep about --target-ongoing-requests in flight at each."""

import logging
import os
import signal
import socket
import threading

from tritlm.cluster import NOT_INSTALLED, check_model_on_nodes, connect, first_line
from tritlm.runtime.errors import InputError

try:
    from ray import serve
except ImportError:
    raise InputError(NOT_INSTALLED) from None

APP_NAME = "tritlm"


@serve.ingress()  # no app here: __serve_build_asgi_app__ makes it inside each replica, around its own Model
class Replica:
    def __init__(self, model_path, threads, n_ctx, app_options):
        from tritlm.runtime import Model

        try:
            # use_mmap: the replicas on a machine share the page cache's one copy
            self.model = Model(model_path, threads=threads, n_ctx=n_ctx, use_mmap=True)
        except InputError as e:  # the model file on this node
            raise InputError(f"replica on {socket.gethostname()}: {e}") from None
        self.app_options = {"n_ctx": n_ctx, **app_options}

    def __serve_build_asgi_app__(self):
        from tritlm.runtime.server.app import create_app

        return create_app(self.model, **self.app_options)


def application(
    model_path,
    threads=1,
    n_ctx=None,
    parallel=4,
    replicas=1,
    min_replicas=None,
    max_replicas=None,
    target_ongoing_requests=None,
    replica_cpus=None,
    replica=Replica,
    **app_options,
):
    """The bound Serve application: `replicas` copies of `replica`, each reserving replica_cpus (default: threads)
    CPUs; autoscaled between min_replicas (default 1) and max_replicas when max_replicas is given. app_options
    (api_key, max_body_bytes, allowed_hosts) go to create_app."""
    if replicas < 1 or (max_replicas is not None and max_replicas < max(replicas, min_replicas or 1)):
        raise InputError(
            f"replicas: need 1 <= --min-replicas, --replicas <= --max-replicas; got {replicas} replicas"
            + (f", {min_replicas or 1}-{max_replicas}" if max_replicas is not None else "")
        )
    options = {
        "ray_actor_options": {"num_cpus": threads if replica_cpus is None else replica_cpus},
        "max_ongoing_requests": parallel,
    }  # more wait at the proxy, for whichever replica frees a slot first
    if max_replicas is not None:
        options["autoscaling_config"] = {
            "min_replicas": 1 if min_replicas is None else min_replicas,
            "initial_replicas": max(replicas, min_replicas or 1),
            "max_replicas": max_replicas,
            "target_ongoing_requests": target_ongoing_requests or parallel,
        }
    else:
        options["num_replicas"] = replicas
    return (
        serve.deployment(replica, name="tritlm")
        .options(**options)
        .bind(model_path, threads, n_ctx, {"parallel": parallel, **app_options})
    )


def deploy(app, host="127.0.0.1", port=8000) -> str:
    """Runs the application behind Ray's HTTP proxy at host:port (a cluster already serving keeps its own
    address); returns its URL once every replica is up. A replica that fails to start is a one-line error."""
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # its start-up lines; the banner says where it is
    serve.start(http_options={"host": host, "port": port})
    try:
        serve.run(app, name=APP_NAME, route_prefix="/")
    except RuntimeError as e:  # "Deploying application tritlm failed": the replica's traceback is in its status
        status = serve.status().applications.get(APP_NAME)
        messages = [d.message for d in (status.deployments.values() if status else ()) if d.message]
        raise InputError(f"Ray Serve: {first_line(e, *messages)}") from None
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve_replicas(
    model_path,
    host,
    port,
    threads,
    n_ctx,
    parallel,
    replicas,
    ray_address=None,
    min_replicas=None,
    max_replicas=None,
    target_ongoing_requests=None,
    **app_options,
) -> int:
    if port == 0:  # Ray's proxy binds on the head node, which may not be this one
        raise InputError("--port 0 cannot be used with Ray: give the proxy's port")
    model_path = os.path.abspath(model_path)  # replicas do not share this process's working directory
    ray = connect(ray_address)
    try:
        check_model_on_nodes(ray, model_path)
        app = application(
            model_path,
            threads,
            n_ctx,
            parallel,
            replicas,
            min_replicas,
            max_replicas,
            target_ongoing_requests,
            **app_options,
        )
        url = deploy(app, host, port)
        scaling = f"{min_replicas or 1}-{max_replicas} replicas" if max_replicas else f"{replicas} replicas"
        print(
            f"tritlm serve: {model_path} on Ray ({ray.get_runtime_context().gcs_address}), {scaling} of "
            f"{parallel} slots, {threads} thread(s) each\n  chat page: {url}/\n  Ctrl-C stops the server.",
            flush=True,
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):  # either: take the app down, then leave the cluster
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(1):
            pass
        if ray_address is not None:  # a cluster of our own goes down whole with ray.shutdown
            serve.delete(APP_NAME)
    finally:
        ray.shutdown()
    return 0


def build(args: dict):
    """Ray's application builder, the same application as `tritlm serve --replicas`, for `serve run
    tritlm.cluster.serve:build model=PATH [replicas=N threads=T parallel=P ctx_size=C replica_cpus=X api_key=KEY]`
    and a KubeRay RayService's import_path (values arrive as strings)."""
    unknown = set(args) - {"model", "replicas", "threads", "parallel", "ctx_size", "replica_cpus", "api_key"}
    if unknown or "model" not in args:
        raise InputError(
            f"tritlm.cluster.serve:build takes model=PATH and optional replicas, threads, parallel, ctx_size, "
            f"replica_cpus, api_key; got {sorted(args)}"
        )

    def number(key, kind, default):
        return default if args.get(key) is None else kind(args[key])

    return application(
        args["model"],
        threads=number("threads", int, 1),
        n_ctx=number("ctx_size", int, None),
        parallel=number("parallel", int, 4),
        replicas=number("replicas", int, 1),
        replica_cpus=number("replica_cpus", float, None),
        api_key=args.get("api_key"),
    )
