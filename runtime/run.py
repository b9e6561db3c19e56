"""`tritlm run`: completes a prompt with a GGUF model, streaming the text to stdout as it is generated, then
reports load time and prompt and generation speed on stderr, as llama.cpp does.

Other modes (e.g. an interactive chat) add their arguments in `add_arguments` and branch in `run`."""

import sys
import time

from tritlm.runtime.cli import add_model_options, read_text
from tritlm.runtime.errors import InputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="complete a prompt with a ternary GGUF model",
        description="Complete a prompt, streaming the text as it is generated.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run, errors=(InputError,))


def add_arguments(parser) -> None:
    parser.add_argument("-m", "--model", required=True, help="GGUF model file")
    parser.add_argument("-p", "--prompt", help="the text to complete")
    parser.add_argument("-f", "--file", help="read the text to complete from this file (UTF-8)")
    parser.add_argument(
        "-n",
        "--n-predict",
        type=int,
        default=128,
        help="tokens to generate at most (default 128; -1: until end of text or a full context)",
    )
    parser.add_argument("--temp", type=float, default=0.8, help="temperature (default 0.8; 0: greedy)")
    parser.add_argument(
        "--top-k", type=int, default=40, help="sample among the k most likely tokens (default 40; 0: all)"
    )
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling probability (default 0.95; 1: off)")
    parser.add_argument(
        "--min-p",
        type=float,
        default=0.0,
        help="keep tokens at least this likely relative to the top one (default 0: off)",
    )
    parser.add_argument(
        "--repeat-penalty", type=float, default=1.0, help="divide the logits of recent tokens by this (default 1: off)"
    )
    parser.add_argument(
        "--repeat-last-n",
        type=int,
        default=64,
        help="recent tokens the penalties look at (default 64; 0: off, -1: all)",
    )
    parser.add_argument(
        "--presence-penalty", type=float, default=0.0, help="subtract from recent tokens' logits (default 0)"
    )
    parser.add_argument(
        "--frequency-penalty",
        type=float,
        default=0.0,
        help="subtract this times a recent token's count from its logit (default 0)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one)")
    parser.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: physical cores)")
    parser.add_argument(
        "-c", "--ctx-size", type=int, default=None, help="context size in tokens (default: the model's, at most 4096)"
    )
    parser.add_argument("--echo", action="store_true", help="print the prompt before the completion")
    add_model_options(parser)
    parser.add_argument(
        "--chat",
        "-cnv",
        "--conversation",
        dest="chat",
        action="store_true",
        help="interactive chat with the model's chat template (Ctrl-C stops an answer, Ctrl-D exits)",
    )
    parser.add_argument(
        "-no-cnv", "--no-conversation", dest="chat", action="store_false", help="complete the prompt (the default)"
    )
    parser.add_argument("--system", help="system prompt of --chat")


def run(args) -> int:
    from tritlm.runtime import Model

    if args.file is not None:
        if args.prompt is not None:
            raise InputError("give the prompt with -p or -f, not both")
        args.prompt = read_text(args.file)
    if args.prompt is None and not args.chat:
        raise InputError("no prompt: give one with -p/--prompt or -f/--file")
    start = time.perf_counter()
    model = Model(
        args.model,
        threads=args.threads,
        n_ctx=args.ctx_size,
        act_topk=args.act_topk,
        sparse=not args.no_sparse,
        use_mmap=args.mmap,
        kv_type=args.cache_type,
    )
    load_seconds = time.perf_counter() - start
    try:
        if args.chat:
            from tritlm.runtime.chat import chat
            from tritlm.runtime.sampler import Sampler

            sampler = Sampler(args.temp, args.top_k, args.top_p, args.seed, **penalties(args))
            return chat(model, sampler, args.n_predict if args.n_predict >= 0 else None, args.system)
        return complete(model, args, load_seconds)
    finally:
        model.close()


def penalties(args) -> dict:
    """The Sampler settings beyond temperature, top-k, top-p and seed."""
    return {
        "min_p": args.min_p,
        "repeat_penalty": args.repeat_penalty,
        "repeat_last_n": args.repeat_last_n,
        "presence_penalty": args.presence_penalty,
        "frequency_penalty": args.frequency_penalty,
    }


def complete(model, args, load_seconds: float) -> int:
    out, err = sys.stdout, sys.stderr
    max_tokens = args.n_predict if args.n_predict >= 0 else model.n_ctx
    generation = model.generate(
        args.prompt,
        max_tokens,
        temperature=args.temp,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        **penalties(args),
    )
    if args.echo:
        print(args.prompt, end="", file=out, flush=True)
    try:
        for piece in generation:
            out.write(piece)
            out.flush()
    finally:
        generation.close()
        print(file=out, flush=True)
        report(generation, load_seconds, err)
    return 0


def report(generation, load_seconds: float, err) -> None:
    def rate(n: int, seconds: float) -> str:
        return f"{n:5d} tokens in {1000 * seconds:9.2f} ms ({n / seconds if seconds else 0:8.2f} tokens/s)"

    print(f"\nload time   = {1000 * load_seconds:9.2f} ms", file=err)
    print(f"prompt eval = {rate(len(generation.ids), generation.prompt_seconds)}", file=err)
    print(f"generation  = {rate(generation.n_decoded, generation.decode_seconds)}", file=err)
