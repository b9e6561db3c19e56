"""`tritlm convert` and `tritlm synth`: thin wrappers over converter functions."""


def register(sub) -> None:
    from .presets import FORMS, PRESETS
    p = sub.add_parser("synth", help="write a random-weight checkpoint in microsoft/bitnet-b1.58-2B-4T's form")
    p.add_argument("--preset", required=True, choices=list(PRESETS))
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--form", choices=FORMS, default="packed",
                   help="packed: uint8 ternary + bf16 weight_scale; bf16: bf16 master weights")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_synth)


def run_synth(args) -> int:
    from .synth import synth
    synth(args.preset, args.output, args.form, args.seed)
    print(f"wrote {args.preset} ({args.form}) to {args.output}")
    return 0
