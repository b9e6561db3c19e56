"""tritlm/formats.py is the one table of tensor types: its block sizes against native/kernels/blocks.h (compiled, so
its _Static_asserts on the block structs hold) and the engine's type ids, and the import rule it exists for:
converter -> formats <- runtime, the converter never importing the runtime."""

import os
import re
import subprocess
import sys

from tritlm.formats import BY_ID, LAYER_TENSORS, MAX_ROW, ROW_ALIGN, TYPES
from tritlm.runtime._native import ffi, lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK_TYPES = ("q8_0", "q4_k", "q6_k", "tq1_0", "tq2_0", "i2_s")


def test_c_block_constants_match_the_table(tmp_path):
    names = [f"TL_{name.upper()}_{what}" for name in BLOCK_TYPES for what in ("VALUES", "BYTES")]
    names += ["TL_I2_S_TRAILER", "TL_ROW_ALIGN", "TL_MAX_ROW"]
    source = tmp_path / "blocks.c"
    source.write_text(
        '#include <stdio.h>\n#include "kernels/blocks.h"\nint main(void) {\n'
        + "".join(f'    printf("{n} %d\\n", (int){n});\n' for n in names)
        + "    return 0;\n}\n"
    )
    exe = tmp_path / "blocks"
    subprocess.run(
        [
            os.environ.get("CC", "cc"),
            "-std=c11",
            "-Wall",
            "-Werror",
            "-I",
            os.path.join(ROOT, "native"),
            str(source),
            "-o",
            str(exe),
        ],
        check=True,
    )
    printed = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    got = {name: int(value) for name, value in (line.split() for line in printed.splitlines())}
    for name in BLOCK_TYPES:
        t = TYPES[name]
        assert (got[f"TL_{name.upper()}_VALUES"], got[f"TL_{name.upper()}_BYTES"]) == (t.block_values, t.block_bytes)
    assert got["TL_I2_S_TRAILER"] == TYPES["i2_s"].trailer == 32
    assert got["TL_ROW_ALIGN"] == ROW_ALIGN == 16
    assert got["TL_MAX_ROW"] == MAX_ROW


def test_engine_type_ids_are_the_tables():
    for name, t in TYPES.items():
        assert getattr(lib, f"TL_{name.upper()}") == t.id, name
    assert len(BY_ID) == len(TYPES)


def test_layer_tensors_are_tl_layers_fields():
    assert [name for name, _ in ffi.typeof("tl_layer").fields] == list(LAYER_TENSORS)


def test_sizes_as_docs_format_md_gives_them():
    """The table's rows for the ternary types, as docs/format.md states them (values, bytes, id)."""
    doc = open(os.path.join(ROOT, "docs", "format.md")).read()
    for name in ("tq1_0", "tq2_0", "i2_s"):
        row = re.search(rf"\| `{name}` \| (\d+) \| (\d+) values, (\d+) bytes \|", doc)
        t = TYPES[name]
        assert tuple(map(int, row.groups())) == (t.id, t.block_values, t.block_bytes), name
    assert TYPES["i2_s"].nbytes((128 * 3, 5)) == 128 * 3 * 5 // 4 + 32  # data, then the 32-byte trailer
    assert TYPES["tq2_0"].padded_cols(3200) == 3328 and TYPES["i2_s"].padded_cols(8640) == 8704


def test_the_converter_never_imports_the_runtime():
    code = (
        "import sys, tritlm.converter.cli, tritlm.converter.write, tritlm.converter.synth, tritlm.converter.hub; "
        "print(sorted(m for m in sys.modules if m.startswith('tritlm.runtime')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    formats_imports = re.findall(
        r"^(?:from|import) ([\w.]+)", open(os.path.join(ROOT, "tritlm", "formats.py")).read(), re.M
    )
    assert not {"tritlm.converter", "tritlm.runtime"} & {".".join(m.split(".")[:2]) for m in formats_imports}
