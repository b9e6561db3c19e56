"""Copies of GGUF files with one thing changed, written with gguf-py (an independent reader and writer), for the
tests that check what the loader refuses."""

import gguf


def rewrite(src: str, dst: str, arch=None, drop=(), reshape=None, values=None, types=None):
    """src copied with another architecture, tensors dropped, one reshaped (reshape: (name, numpy shape such as
    (rows, cols))), metadata values changed (values: key -> a value of the key's type; (value, type[, element type])
    for another type; None to remove the key; keys that src lacks are added) or tensor types relabelled (types:
    name -> id)."""
    reader = gguf.GGUFReader(src)
    old_arch = reader.fields["general.architecture"].contents()
    arch = arch or old_arch
    values = dict(values or {})
    w = gguf.GGUFWriter(dst, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        value = values.pop(key, field.contents())
        if value is None:
            continue
        if isinstance(value, tuple):
            w.add_key_value(key, *value)
        else:
            w.add_key_value(key.replace(f"{old_arch}.", f"{arch}.", 1), value, field.types[0], sub)
    for key, value in values.items():
        w.add_key_value(key, *value)
    for t in reader.tensors:
        if t.name in drop:
            continue
        data = t.data  # gguf-py's numpy shape: quantized types in bytes [rows, row bytes]
        if reshape and t.name == reshape[0]:
            *outer, cols = reshape[1]
            block, block_bytes = gguf.GGML_QUANT_SIZES[t.tensor_type]
            data = data.reshape(*outer, cols // block * block_bytes)
        w.add_tensor(t.name, data, raw_dtype=(types or {}).get(t.name, t.tensor_type))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst
