"""Train tritlm's embedded model: a tiny BitNet b1.58 on the Python standard library's own source.

The recipe is BitNet b1.58's quantization-aware training, run through transformers' own modules: every
linear layer of the decoder is an `AutoBitLinear` in online mode (absmean ternary weights and per-token
int8 absmax activations in the forward pass, straight-through gradients), fp32 master weights, AdamW.
The result is saved in microsoft/bitnet-b1.58-2B-4T's on-disk form (packed uint8 weights, a bf16
`weight_scale` that multiplies, bf16 embeddings and norms, its `quantization_config`).

    nohup nice .venv/bin/python models/train_tiny.py --out models/bitnet-tiny > .cache/train.log 2>&1 &

torch is a training/test dependency only; the runtime never imports it."""

import argparse
import math
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # transformers' quantizers are @torch.compile; eager is faster here

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, pre_tokenizers, trainers
from transformers import BitNetConfig, BitNetForCausalLM
from transformers.integrations.bitnet import AutoBitLinear

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tritlm.converter import synth, synth_tokenizer  # noqa: E402
from tritlm.converter.hf_ternary import absmean_ternarize, pack  # noqa: E402

STDLIB = Path("/root/.pyenv/versions/3.11.7/lib/python3.11")
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__"}
# Held out from tokenizer and model training; models/eval_perplexity.py reports perplexity on them.
HELD_OUT = [
    "bisect.py",
    "heapq.py",
    "shlex.py",
    "textwrap.py",
    "json/decoder.py",
    "csv.py",
    "graphlib.py",
    "colorsys.py",
]

SPECIAL_TOKENS = 16  # Llama 3's block (bos, eos, headers, eot, reserved), after the BPE vocabulary
VOCAB_SIZE = 4096

# The shape: every ternary row length (256, 768) is a multiple of 256, so tq1_0, tq2_0 and i2_s all fit.
ARCH = dict(
    hidden_size=256,
    intermediate_size=768,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    vocab_size=VOCAB_SIZE,
)


def corpus_files(root: Path = STDLIB) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files) of the stdlib, in sorted order."""
    files = sorted(p for p in root.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(root).parts[:-1]))
    held = {root / name for name in HELD_OUT}
    missing = held - set(files)
    if missing:
        raise OSError(f"held-out files not found: {sorted(map(str, missing))}")
    return [p for p in files if p not in held], [root / name for name in HELD_OUT]


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def train_tokenizer(files: list[Path]) -> Tokenizer:
    """Byte-level BPE with Llama 3's pre-tokenizer, decoder and special-token block, trained on the files."""
    tokenizer = synth_tokenizer.new_llama3_bpe()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator((read_text(p) for p in files), trainer=trainer)
    return synth_tokenizer.finish_llama3(tokenizer, SPECIAL_TOKENS)


def encode_files(tokenizer: Tokenizer, files: list[Path]) -> np.ndarray:
    """One stream: each file as <|begin_of_text|> + its tokens, as the runtime sees a prompt."""
    encodings = tokenizer.encode_batch([read_text(p) for p in files])
    return np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encodings])


def build_model(config: dict) -> BitNetForCausalLM:
    """A float BitNet whose decoder linears are swapped for transformers' online AutoBitLinear (QAT)."""
    float_config = {k: v for k, v in config.items() if k != "quantization_config"}
    model = BitNetForCausalLM(BitNetConfig(**float_config))
    for name, module in list(model.model.named_modules()):
        if isinstance(module, torch.nn.Linear):
            bit = AutoBitLinear(module.in_features, module.out_features, bias=False, online_quant=True)
            bit.weight = module.weight
            model.model.set_submodule(name, bit)
    return model


def batches(stream: np.ndarray, batch: int, length: int, generator: torch.Generator):
    """Endless random windows of length+1 tokens from the stream (input and shifted target)."""
    while True:
        starts = torch.randint(0, len(stream) - length - 1, (batch,), generator=generator).numpy()
        yield torch.from_numpy(np.stack([stream[s : s + length + 1] for s in starts]))


def windows(stream: np.ndarray, length: int) -> list[torch.Tensor]:
    """The stream cut into consecutive non-overlapping windows (the last one shorter)."""
    return [torch.from_numpy(stream[i : i + length]) for i in range(0, len(stream) - 1, length)]


@torch.no_grad()
def mean_loss(model, stream: np.ndarray, length: int) -> float:
    """Token-weighted mean next-token cross-entropy over the stream's windows (fresh context each)."""
    total, count = 0.0, 0
    for window in windows(stream, length):
        if len(window) < 2:
            continue
        loss = model(input_ids=window[None], labels=window[None]).loss.item()
        total, count = total + loss * (len(window) - 1), count + len(window) - 1
    return total / count


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model, stream: np.ndarray, steps: int, batch: int, length: int, lr: float, seed: int, log_every: int):
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95)
    )
    data = batches(stream, batch, length, torch.Generator().manual_seed(seed))
    model.train()
    start, smoothed = time.time(), None
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr, warmup=min(200, steps // 10))
        tokens = next(data)
        logits = model(input_ids=tokens[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        smoothed = loss.item() if smoothed is None else 0.95 * smoothed + 0.05 * loss.item()
        if step % log_every == 0 or step == steps - 1:
            elapsed = time.time() - start
            rate = (step + 1) * batch * length / elapsed
            print(
                f"step {step:5d}/{steps}  loss {loss.item():.3f}  avg {smoothed:.3f}  "
                f"lr {optimizer.param_groups[0]['lr']:.2e}  {rate:.0f} tok/s  {elapsed / 60:.1f} min",
                flush=True,
            )
    model.eval()


@torch.no_grad()
def snap_to_export_precision(model) -> None:
    """Round what the checkpoint stores in bf16 (embeddings, norms, weight scales) so the trained model's
    quantized forward is exactly what the saved checkpoint computes. Scaling a master weight by
    bf16(mean|W|)/mean|W| keeps its ternary values and makes its absmean scale bf16-exact."""
    for name, param in model.named_parameters():
        if name.endswith("_proj.weight"):
            mean = param.abs().mean().clamp(min=1e-5)
            param.mul_(mean.to(torch.bfloat16).float() / mean)
        else:
            param.copy_(param.to(torch.bfloat16).float())


def checkpoint_tensors(model) -> dict[str, torch.Tensor]:
    """2B-4T's safetensors: packed uint8 linears with a bf16 [1] weight_scale; everything else bf16."""
    tensors = {}
    for name, param in model.named_parameters():
        if name == "lm_head.weight":
            continue  # tied to the embedding
        if name.endswith("_proj.weight"):
            ternary, scale = absmean_ternarize(param.detach().numpy())
            tensors[name] = torch.from_numpy(pack(ternary))
            tensors[name.replace(".weight", ".weight_scale")] = torch.tensor([float(scale)], dtype=torch.bfloat16)
        else:
            tensors[name] = param.detach().to(torch.bfloat16).contiguous()
    return tensors


def save_checkpoint(model, tokenizer: Tokenizer, config: dict, out: Path) -> None:
    """Write the folder under a temporary name and rename it when complete."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(checkpoint_tensors(model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
    synth.write_json(str(tmp / "config.json"), config)
    tokenizer.save(str(tmp / "tokenizer.json"))
    synth.write_json(
        str(tmp / "tokenizer_config.json"),
        synth_tokenizer.tokenizer_config(tokenizer, config["max_position_embeddings"]),
    )
    synth.write_json(
        str(tmp / "generation_config.json"),
        {
            "bos_token_id": config["bos_token_id"],
            "eos_token_id": [config["eos_token_id"], tokenizer.token_to_id(synth_tokenizer.EOT)],
        },
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def export(model, held: np.ndarray, tokenizer: Tokenizer, config: dict, out: Path) -> None:
    """Rounds to the stored precision, prints the held-out loss of that exact forward, saves the checkpoint."""
    snap_to_export_precision(model)
    loss = mean_loss(model, held, config["max_position_embeddings"])
    print(f"held-out loss of the trained model's quantized forward: {loss:.4f} (perplexity {math.exp(loss):.2f})")
    save_checkpoint(model, tokenizer, config, out)
    print(f"wrote {out}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "bitnet-tiny")
    parser.add_argument("--steps", type=int, default=1800)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128, help="training window in tokens")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--master", type=Path, help="also save the fp32 master weights here (torch.save)")
    parser.add_argument(
        "--export-from", type=Path, metavar="MASTER", help="skip training: export master weights saved by --master"
    )
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    train_files, held_files = corpus_files()
    tokenizer = train_tokenizer(train_files)
    stream = encode_files(tokenizer, train_files)
    held = encode_files(tokenizer, held_files)
    print(
        f"{len(train_files)} training files, {len(stream)} tokens; {len(held_files)} held out, {len(held)} tokens",
        flush=True,
    )
    config = synth.make_config(ARCH, "packed", tokenizer)  # 2B-4T's config.json with our sizes
    model = build_model(config)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters", flush=True)
    if args.export_from:
        model.load_state_dict(torch.load(args.export_from))
    else:
        train(model, stream, args.steps, args.batch, args.length, args.lr, args.seed, args.log_every)
    if args.master:
        torch.save(model.state_dict(), args.master)
    export(model, held, tokenizer, config, args.out)


if __name__ == "__main__":
    main()
