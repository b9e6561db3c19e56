"""tritlm beyond one machine, on Ray (the optional extra `tritlm[ray]`): serve.py deploys the server's FastAPI app
as a Ray Serve deployment of N replicas, batch.py runs `tritlm batch` over Ray Data workers. Both wrap the
runtime, never copy it; nothing in runtime/ imports ray: its CLI imports these modules only when asked to.

`connect` joins (or starts) the cluster and turns Ray's failures into the one-line errors the CLI prints."""

import logging
import os
import re
import socket

from tritlm.runtime.errors import InputError

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # read when ray is imported: no usage reports
NOT_INSTALLED = "Ray is not installed: pip install 'tritlm[ray]'"


def connect(address: str | None = None):
    """`ray`, initialised: joined to the cluster at address ("host:port", "ray://host:port" or "auto"), or a
    fresh Ray on this machine when address is None. An unreachable address fails at once (ray.init would retry
    for minutes)."""
    if address and address != "auto":
        check_reachable(address)
    try:
        import ray
    except ImportError:
        raise InputError(NOT_INSTALLED) from None
    try:
        ray.init(
            address=address,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=True,
            include_dashboard=None if address else False,  # None: the cluster's own setting
        )
    except ConnectionError as e:
        raise InputError(f"Ray cluster at {address}: {first_line(e)}") from None
    return ray


def check_model_on_nodes(ray, path: str) -> None:
    """Every live node must hold the GGUF file at `path` (workers may land on any): a missing one is named now,
    rather than as a worker's traceback later."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node["Alive"]]
    is_file = ray.remote(num_cpus=0)(os.path.isfile)
    found = ray.get(
        [
            is_file.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(path)
            for node in nodes
        ]
    )
    missing = [node["NodeManagerAddress"] for node, ok in zip(nodes, found) if not ok]
    if missing:
        raise InputError(f"{path}: no such model file on Ray node {', '.join(missing)}")


def check_reachable(address: str) -> None:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"Ray address '{address}': expected host:port (e.g. 10.0.0.1:6379) or 'auto'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise InputError(f"Ray cluster at {address} is not reachable: {e.strerror or e}") from None


def first_line(error: BaseException) -> str:
    """The root cause of a Ray failure in one line. Ray re-raises a worker's exception (RayTaskError,
    ActorDiedError) as text holding the remote traceback, whose last "XError: message" line is the cause."""
    seen: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in seen:
        seen.append(link)
        link = link.__cause__ or link.__context__
    for e in seen:
        cause = raised_in(str(e))
        if cause:
            return cause
    lines = [line.strip() for line in str(seen[0]).splitlines() if line.strip()]
    return lines[0] if lines else type(seen[0]).__name__


def raised_in(text: str) -> str | None:
    """The message of the last "XError: message" line of a traceback's text."""
    causes = [m.group(1) for m in map(_RAISED.match, text.splitlines()) if m]
    return causes[-1] if causes else None


_RAISED = re.compile(r"^(?:[A-Za-z_][\w.]*(?:\([\w.]+\))?)(?:Error|Exception): (.+)$")
