"""`tritlm convert` and `tritlm synth`: thin wrappers over converter functions."""

from .errors import ConverterError


def register(sub) -> None:
    from tritlm.quants import OUTPUT_MATRIX_TYPES

    from .pack import OUTPUT_TYPES
    from .presets import FORMS, PRESETS

    p = sub.add_parser("convert", help="convert a Hugging Face BitNet checkpoint (folder or Hub repo id) to GGUF")
    p.add_argument("src", nargs="?", help="checkpoint folder or Hub repo id (owner/name)")
    p.add_argument("-o", "--output", help="output .gguf path")
    p.add_argument("--type", choices=OUTPUT_TYPES, default="i2_s", help="storage of the ternary weights (default i2_s)")
    p.add_argument(
        "--output-type",
        choices=OUTPUT_MATRIX_TYPES,
        help="store the output matrix (logits) in this type, as a separate output.weight if the embedding "
        "is tied; default: the checkpoint's own (lossless)",
    )
    p.add_argument("--revision", help="Hub branch, tag or commit")
    p.add_argument("--list", action="store_true", help="list the supported architectures and known repos")
    p.set_defaults(func=run_convert, errors=(ConverterError,))

    p = sub.add_parser("synth", help="write a random-weight checkpoint in its family's published on-disk form")
    p.add_argument("--preset", required=True, choices=list(PRESETS))
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument(
        "--form",
        choices=FORMS,
        help="packed: uint8 ternary + bf16 weight_scale; bf16: bf16 master "
        "weights; fp16: fp16 latent weights (1bitLLM); default: the preset family's first form",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_synth, errors=(ConverterError,))


def run_convert(args) -> int:
    if args.list:
        from .families import FAMILIES, KNOWN_REPOS, family_for

        print("architectures:")
        for arch in FAMILIES:
            print(f"  {arch:24} {family_for({'architectures': [arch]}).ARCH_NOTE}")
        print("known repos:")
        for repo, note in KNOWN_REPOS.items():
            print(f"  {repo:36} {note}")
        return 0
    if not args.src or not args.output:
        raise ConverterError("convert needs SRC and -o OUT.gguf (or --list)")
    from .hub import model_name, resolve
    from .write import convert

    checkpoint = resolve(args.src, args.revision)
    convert(checkpoint, args.output, args.type, output_type=args.output_type, name=model_name(args.src))
    print(f"wrote {args.output}")
    return 0


def run_synth(args) -> int:
    from .synth import synth

    synth(args.preset, args.output, args.form, args.seed)
    print(f"wrote {args.preset} ({args.form or 'default form'}) to {args.output}")
    return 0
