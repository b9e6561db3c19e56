"""`tritlm batch --ray`: the prompts go to a Ray Data dataset; `map_batches` hands batches of rows to a pool of
Completer actors, each holding one Model and completing its batch with runtime.batch.complete (the server's
Scheduler), the same code as without Ray; the driver writes the results in input order as they come back."""

import json
import logging
import os
import socket

from tritlm.cluster import check_model_on_nodes, connect, first_line
from tritlm.runtime.errors import InputError

ROWS_PER_CALL = 8  # x --parallel: rows per map_batches call (bigger: fuller slots; smaller: finer resume)


class Completer:
    """One Ray Data worker: its own Model over the GGUF file at the same path on its node."""

    def __init__(self, model_path, threads, n_ctx, settings, parallel):
        from tritlm.runtime import Model

        try:
            # use_mmap: the replicas on a machine share the page cache's one copy
            self.model = Model(model_path, threads=threads, n_ctx=n_ctx, use_mmap=True)
        except InputError as e:  # the model file on this node
            raise InputError(f"worker on {socket.gethostname()}: {e}") from None
        self.settings, self.parallel = settings, parallel

    def __call__(self, batch):
        from tritlm.runtime.batch import complete

        results = {}
        rows = [(int(index), json.loads(row)) for index, row in zip(batch["index"], batch["row"])]
        complete(self.model, rows, self.settings, self.parallel, results.__setitem__)
        return {"index": list(results), "result": [json.dumps(r, ensure_ascii=False) for r in results.values()]}


def complete_on_ray(address, model_path, todo, settings, parallel, threads, n_ctx, workers, on_result) -> None:
    """Completes rows [(index, row)] on the cluster with `workers` Completers of `threads` CPUs each (default: as
    many as the cluster's CPUs hold), calling on_result(index, result) as results arrive."""
    model_path = os.path.abspath(model_path)  # workers do not share this process's working directory
    ray = connect(address)
    try:
        check_model_on_nodes(ray, model_path)
        from ray.data import ActorPoolStrategy, DataContext, from_items

        DataContext.get_current().enable_progress_bars = False  # runtime.batch shows one bar
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # its progress lines; failures are raised to us
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        dataset = from_items([{"index": i, "row": json.dumps(row)} for i, row in todo])
        results = dataset.map_batches(
            Completer,
            fn_constructor_args=(model_path, threads, n_ctx, settings, parallel),
            batch_size=ROWS_PER_CALL * parallel,
            compute=ActorPoolStrategy(size=workers),
            num_cpus=threads,
            batch_format="numpy",
        )
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            for index, result in zip(batch["index"], batch["result"]):
                on_result(int(index), json.loads(result))
    except ray.exceptions.RayError as e:
        raise InputError(f"Ray: {first_line(e)}") from None
    finally:
        ray.shutdown()
