"""`tritlm batch`: completes every prompt of a JSONL file into a JSONL of results, one line per prompt, in
input order.

An input line is {"prompt": "...", "id": ...} (id defaults to the line number). A result line is {"id", "prompt",
"text", "finish_reason", "prompt_tokens", "completion_tokens"}, or {"id", "prompt", "error"} for a row that
cannot be completed (not an object, no prompt, a prompt that fills the context): a bad row does not stop the
job. With a seed, row i (from 0) samples with seed + i, so a row's result does not depend on which other
rows it was batched with, nor on --ray.

The output is append-only, one whole line per write, in input order: a rerun keeps the rows already written
(dropping a torn last line) and completes only the rest. Without --ray, one process completes the prompts
with the server's Scheduler (continuous batching over --parallel sequences); with --ray, cluster.batch
spreads them over Ray Data workers, each running `complete` below."""

import asyncio
import json
import os
from dataclasses import dataclass

from tritlm.runtime.cli import open_file, read_text
from tritlm.runtime.errors import InputError
from tritlm.runtime.sampler import Sampler


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "batch",
        help="complete every prompt of a JSONL file (resumable; --ray: on a Ray cluster)",
        description="Complete every prompt of a JSONL file into a JSONL of results, in order.",
    )
    p.add_argument("-m", "--model", required=True, help="the .gguf file (on every worker, with --ray)")
    p.add_argument("-i", "--input", required=True, help='JSONL, one {"prompt": ..., "id": ...} per line')
    p.add_argument("-o", "--output", required=True, help="JSONL of results; if it exists, the job resumes")
    p.add_argument("--max-tokens", type=int, default=128, help="tokens to generate per prompt at most (default 128)")
    p.add_argument("--temperature", "--temp", type=float, default=0.8, help="temperature (default 0.8; 0: greedy)")
    p.add_argument("--top-k", type=int, default=40, help="sample among the k most likely tokens (default 40; 0: all)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling probability (default 0.95; 1: off)")
    p.add_argument("--seed", type=int, default=None, help="row i samples with seed + i (default: fresh seeds)")
    p.add_argument("--parallel", type=int, default=4, help="sequences decoded together per process (default 4)")
    p.add_argument(
        "-t",
        "--threads",
        type=int,
        default=None,
        help="CPU threads per process (default: physical cores; with --ray: 1)",
    )
    p.add_argument("-c", "--ctx-size", type=int, default=None, help="context of each sequence in tokens")
    p.add_argument(
        "--ray",
        action="store_true",
        help="run on a Ray cluster (pip install 'tritlm[ray]'); implied by --ray-address and --workers",
    )
    p.add_argument("--ray-address", default=None, help="the cluster's address (default: start Ray on this machine)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="with --ray: model replicas, one per Ray actor (default: the cluster's CPUs / threads)",
    )
    p.set_defaults(func=batch, errors=(InputError,))


@dataclass
class Settings:
    max_tokens: int = 128
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    seed: int | None = None

    def sampler(self, index: int) -> Sampler:
        return Sampler(self.temperature, self.top_k, self.top_p, None if self.seed is None else self.seed + index)


def batch(args) -> int:
    if args.max_tokens < 1:
        raise InputError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    settings = Settings(args.max_tokens, args.temperature, args.top_k, args.top_p, args.seed)
    settings.sampler(0)  # checks the sampling settings before any work
    rows = read_prompts(args.input)
    done = count_done(args.output, args.input, rows)
    todo = list(enumerate(rows))[done:]
    if not todo:
        print(f"tritlm batch: {args.output} already holds all {len(rows)} results")
        return 0
    if args.ray or args.ray_address is not None or args.workers is not None:
        from tritlm.cluster.batch import complete_on_ray  # Ray is an optional extra: imported only here

        write_in_order(
            args.output,
            len(rows),
            done,
            lambda on_result: complete_on_ray(
                args.ray_address,
                args.model,
                todo,
                settings,
                args.parallel,
                args.threads or 1,
                args.ctx_size,
                args.workers,
                on_result,
            ),
        )
        return 0
    from tritlm.runtime import Model

    with Model(args.model, threads=args.threads, n_ctx=args.ctx_size) as model:
        write_in_order(
            args.output, len(rows), done, lambda on_result: complete(model, todo, settings, args.parallel, on_result)
        )
    return 0


def read_prompts(path: str) -> list:
    """The JSON value of every non-blank line; a line that is not JSON stops here, before any work."""
    rows = []
    for line_no, line in enumerate(read_text(path).split("\n"), 1):  # as a file iterates: not at U+2028
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} line {line_no}: not JSON ({e.msg} at column {e.colno})") from None
        if not (isinstance(value, dict) and "id" in value):  # a row's id: its own, or its line number
            value = {"id": line_no, "row": value} if not isinstance(value, dict) else {"id": line_no, **value}
        rows.append(value)
    return rows


def count_done(out_path: str, in_path: str, rows: list) -> int:
    """How many rows out_path already holds (their ids must be rows' first ids); drops a torn last line."""
    if not os.path.exists(out_path):
        return 0
    n = 0
    with open_file(out_path, "rb+") as f:
        end = 0
        for line in f:
            if not line.endswith(b"\n"):  # a write cut short by a crash: redone
                break
            try:
                got = json.loads(line)["id"]
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{out_path} line {n + 1}: not a result line of tritlm batch") from None
            if n >= len(rows) or got != rows[n]["id"]:
                want = f"id {rows[n]['id']!r}" if n < len(rows) else "no row"
                raise InputError(
                    f"{out_path} line {n + 1}: id {got!r} where {in_path} has {want}: "
                    f"these are not its results (use another -o)"
                )
            n, end = n + 1, end + len(line)
        f.truncate(end)
    return n


def write_in_order(out_path: str, total: int, done: int, run) -> None:
    """Calls run(on_result); on_result(index, result) may come in any order, lines are written in input order
    as soon as every earlier one is, each with one write and a flush."""
    from tqdm import tqdm

    held, out = {}, None
    with tqdm(total=total, initial=done, unit="prompt", desc="tritlm batch", disable=None) as progress:
        next_index = [done]

        def on_result(index, result):
            nonlocal out
            held[index] = result
            out = out or open_file(
                out_path, "a", encoding="utf-8"
            )  # on the first result: a failed start leaves no file
            while next_index[0] in held:
                out.write(json.dumps(held.pop(next_index[0]), ensure_ascii=False) + "\n")
                next_index[0] += 1
                progress.update(1)
            out.flush()

        try:
            run(on_result)
        finally:
            if out is not None:
                out.close()
    if next_index[0] != total:
        raise InputError(f"{out_path}: {total - next_index[0]} results missing")


def complete(model, todo, settings: Settings, parallel: int, on_result) -> None:
    """Completes rows [(index, row)], calling on_result(index, result) as each finishes: the server's Scheduler
    decodes up to `parallel` rows together and a new row takes a slot as soon as one frees."""
    asyncio.run(_complete(model, todo, settings, parallel, on_result))


async def _complete(model, todo, settings, parallel, on_result):
    from tritlm.runtime.server.scheduler import Scheduler

    scheduler = Scheduler(model, parallel)
    scheduler.start()
    try:
        running = set()
        for index, row in todo:
            if len(running) >= 2 * parallel:  # every slot busy and a row waiting for each
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            running.add(asyncio.create_task(_complete_row(scheduler, model, index, row, settings, on_result)))
        await asyncio.gather(*running)
    finally:
        scheduler.stop()


async def _complete_row(scheduler, model, index, row, settings, on_result):
    result = {"id": row["id"], "prompt": row.get("prompt", row.get("row"))}
    prompt = row.get("prompt")
    if not isinstance(prompt, str):
        on_result(
            index,
            {
                **result,
                "error": "the row has no prompt string"
                if "row" not in row
                else "the row is not a JSON object with a prompt",
            },
        )
        return
    ids = model.tokenize(prompt, add_bos=True, special=True)
    room = scheduler.n_ctx - len(ids)
    if room <= 0:
        on_result(
            index,
            {**result, "error": f"the prompt has {len(ids)} tokens: no room left in the context of {scheduler.n_ctx}"},
        )
        return
    job = scheduler.submit(ids, min(settings.max_tokens, room), settings.sampler(index), None)
    parts = []
    async for kind, value in job.events():
        if kind == "step":
            parts.append(value.text)
        elif kind == "error":
            on_result(index, {**result, "error": value})
            return
        else:
            on_result(
                index,
                {
                    **result,
                    "text": "".join(parts),
                    "finish_reason": value,
                    "prompt_tokens": len(ids),
                    "completion_tokens": job.n_generated,
                },
            )
