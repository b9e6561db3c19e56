"""Shapes of the synthetic checkpoints `tritlm synth` writes (no imports: the CLI reads it for --help)."""

# Real shapes, each written in its family's on-disk form (PRESET_FAMILY). tiny is for tests: every row length a
# multiple of 256 so it fits every ternary type; tests give it a trained tokenizer's vocab_size.
PRESETS: dict[str, dict] = {
    "tiny": dict(
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1024,
        max_position_embeddings=512,
    ),
    "2b-4t": dict(
        hidden_size=2560,
        intermediate_size=6912,
        num_hidden_layers=30,
        num_attention_heads=20,
        num_key_value_heads=5,
        vocab_size=128256,
    ),
    # 1bitLLM/bitnet_b1_58-large and -3B (Llama-2 shapes, untied)
    "large": dict(
        hidden_size=1536,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        num_key_value_heads=16,
        vocab_size=32002,
        rope_theta=10000.0,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    ),
    "3b": dict(
        hidden_size=3200,
        intermediate_size=8640,
        num_hidden_layers=26,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32002,
        rope_theta=10000.0,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    ),
    # tiiuae/Falcon3-{1B,3B,7B}-Base (head_dim 256)
    "falcon3-1b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=18,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=256,
        vocab_size=131072,
        rope_theta=1000042.0,
        rms_norm_eps=1e-06,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    ),
    "falcon3-3b": dict(
        hidden_size=3072,
        intermediate_size=9216,
        num_hidden_layers=22,
        num_attention_heads=12,
        num_key_value_heads=4,
        head_dim=256,
        vocab_size=131072,
        rope_theta=1000042.0,
        rms_norm_eps=1e-06,
        max_position_embeddings=32768,
        tie_word_embeddings=False,
    ),
    "falcon3-7b": dict(
        hidden_size=3072,
        intermediate_size=23040,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=4,
        head_dim=256,
        vocab_size=131072,
        rope_theta=1000042.0,
        rms_norm_eps=1e-06,
        max_position_embeddings=32768,
        tie_word_embeddings=False,
    ),
    # meta-llama/Meta-Llama-3-8B
    "llama3-8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        max_position_embeddings=8192,
        tie_word_embeddings=False,
    ),
}

# Each family's published on-disk forms, the first the default: 2B-4T's packed uint8 and bf16 masters;
# 1bitLLM's fp16 latent weights; Falcon3/Falcon-E/Llama3-8B-1.58's packed uint8 with a dividing scale.
FAMILY_FORMS = {"bitnet": ("packed", "bf16"), "1bitllm": ("fp16",), "llama": ("packed",)}
PRESET_FAMILY = {
    "large": "1bitllm",
    "3b": "1bitllm",
    "falcon3-1b": "llama",
    "falcon3-3b": "llama",
    "falcon3-7b": "llama",
    "llama3-8b": "llama",
}  # the others: bitnet
FORMS = ("packed", "bf16", "fp16")
