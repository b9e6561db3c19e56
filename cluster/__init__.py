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
        raise InputError(f"Ray cluster at {address}: {lead(e)}") from None
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


def first_line(error: BaseException, *texts: str) -> str:
    """A failed Ray job as one line for the user: the message of the InputError a worker raised (bad input on its
    node), or Ray's own first line when no Python exception is behind the failure (a lost node, a killed worker).
    A worker's other exceptions are bugs: `error` is raised again, their remote traceback in its text. Ray passes a
    worker's exception (RayTaskError, ActorDiedError) on as text holding the remote traceback, whose last
    "XError: message" line is the cause; texts: more such text (a deployment's status)."""
    seen: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in seen:
        seen.append(link)
        link = link.__cause__ or link.__context__
    input_errors = {c.__name__ for c in _subclasses(InputError)}
    for text in [*texts, *map(str, seen)]:
        cause = raised_in(text)
        if cause and cause[0] not in input_errors:
            raise error if text not in texts else RuntimeError(text)
        if cause:
            return cause[1]
    return lead(error)


def lead(error: BaseException) -> str:
    """An exception's first nonblank line (its class name if it has none)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def raised_in(text: str) -> tuple[str, str] | None:
    """The class name (without its module) and message of the last "XError: message" line of a traceback's text;
    Ray writes a wrapped class in parentheses: "RayTaskError(ModelError): ..."."""
    causes = [m for m in map(_RAISED.match, text.splitlines()) if m]
    return ((causes[-1][2] or causes[-1][1]).rsplit(".", 1)[-1], causes[-1][3]) if causes else None


def _subclasses(cls: type) -> list[type]:
    children: list[type] = cls.__subclasses__()
    return [cls] + [d for c in children for d in _subclasses(c)]


_RAISED = re.compile(r"^([A-Za-z_][\w.]*?(?:Error|Exception))(?:\(([\w.]+)\))?: (.+)$")
