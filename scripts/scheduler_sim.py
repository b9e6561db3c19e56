"""The server's scheduler under load_test.py's TTFT scenario, on a model slowed to given pass costs (sleeps), so the
figures depend on the scheduling policy alone, not on other load on the machine:

    .venv/bin/python scripts/scheduler_sim.py --streams 6 --fixed 0.11 --per-token 0.015 --logit-row 0.005

The embedded model (converted to a temporary i2_s file) runs every pass for real after sleeping fixed + per_token x
(tokens - 1) + logit_row x (logit rows - 1) seconds: one token's pass, what each further token adds, and each further
row of logits (take them from a traced server on the target machine). A short prompt's time to first token is
timed (median of --samples) idle, beside --streams streams (64-token completions one after another), and beside
them while a --long-prompt token prompt is read (each short prompt sent at a random moment within about a pass);
then the long prompt's own time to first token. The scheduler runs with --pass-limit (as `tritlm serve`)."""

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tritlm.converter.write import convert  # noqa: E402
from tritlm.runtime import Model  # noqa: E402
from tritlm.runtime.sampler import Sampler  # noqa: E402
from tritlm.runtime.server.scheduler import Scheduler  # noqa: E402


def slowed(model, fixed, per_token, logit_row):
    forward = model.forward

    def slow_forward(seqs, tokens, logit_rows=None):
        rows = len(tokens) if logit_rows is None else sum(r >= 0 for r in logit_rows)
        time.sleep(fixed + per_token * (len(tokens) - 1) + logit_row * max(rows - 1, 0))
        return forward(seqs, tokens, logit_rows)

    model.forward = slow_forward


async def first_token(scheduler, ids):
    start = time.perf_counter()
    async for kind, _ in scheduler.submit(ids, 1, Sampler(temperature=0)).events():
        if kind == "step":
            return time.perf_counter() - start


async def scenario(model, args, short, long):
    scheduler = Scheduler(model, args.streams + 2, pass_limit=args.pass_limit)
    scheduler.start()
    rng, out, stop = random.Random(0), {}, asyncio.Event()

    async def stream():
        while not stop.is_set():
            async for _ in scheduler.submit(short, 64, Sampler(temperature=0)).events():
                pass

    try:
        out["idle"] = [await first_token(scheduler, short) for _ in range(args.samples)]
        gap = 4 * statistics.median(out["idle"])
        streams = [asyncio.create_task(stream()) for _ in range(args.streams)]
        await asyncio.sleep(0.5)
        out["streams"] = []
        for _ in range(args.samples):
            await asyncio.sleep(rng.uniform(0, gap))
            out["streams"].append(await first_token(scheduler, short))
        out["long"], out["streams+long"] = [], []
        while len(out["streams+long"]) < args.samples:
            reading = asyncio.create_task(first_token(scheduler, long))
            while len(out["streams+long"]) < args.samples:
                await asyncio.sleep(rng.uniform(0, gap))
                if reading.done():
                    break
                out["streams+long"].append(await first_token(scheduler, short))
            out["long"].append(await reading)
        stop.set()
        await asyncio.gather(*streams)
    finally:
        scheduler.stop()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=6)
    p.add_argument("--samples", type=int, default=15)
    p.add_argument("--fixed", type=float, default=0.11, help="seconds of a one-token pass")
    p.add_argument("--per-token", type=float, default=0.015, help="seconds each further token adds")
    p.add_argument("--logit-row", type=float, default=0.005, help="seconds each further row of logits adds")
    p.add_argument("--long-prompt", type=int, default=400, help="tokens (the embedded model's context is 512)")
    p.add_argument("--pass-limit", type=float, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tiny.gguf")
        convert(os.path.join(ROOT, "models", "bitnet-tiny"), path, "i2_s", progress=False)
        with Model(path, threads=1, n_ctx=512) as model:
            slowed(model, args.fixed, args.per_token, args.logit_row)
            short = model.tokenize("The history of", add_bos=True)
            long = model.tokenize(" ".join(["The history of a lake and of the world"] * 80), add_bos=True)
            out = asyncio.run(scenario(model, args, short, long[: args.long_prompt]))
    idle = statistics.median(out["idle"])
    print(f"TTFT of a short prompt, p50 (max) of {args.samples}: idle {idle * 1000:.0f} ms")
    for key, what in (("streams", f"beside {args.streams} streams"), ("streams+long", "+ a long prompt being read")):
        p50 = statistics.median(out[key])
        print(f"  {what}: {p50 * 1000:.0f} ms ({max(out[key]) * 1000:.0f} ms), {p50 / idle:.2f}x idle")
    print(f"  the {args.long_prompt}-token prompt's own TTFT: {statistics.median(out['long']):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
