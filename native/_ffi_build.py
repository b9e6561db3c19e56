"""cffi build script (out-of-line API mode): compiles native/*.c and native/kernels/*.c into tritlm.runtime._native (runtime/_native*.so).

Python sees exactly what native/tritlm.h (the engine) and native/probe.h (test and benchmark entry points)
declare: the cdef is read from those headers."""

import glob
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

HEADERS = ["tritlm.h", "probe.h"]  # the engine's API, and the entry points for tests and benchmarks


def declarations(header: str) -> str:
    """A header's declarations as cffi reads them: the text without its preprocessor lines (cffi drops comments)."""
    with open(os.path.join(HERE, header)) as f:
        return "".join(line for line in f if not line.lstrip().startswith("#"))


ffibuilder = FFI()
ffibuilder.cdef("".join(declarations(h) for h in HEADERS))
ffibuilder.set_source(
    "tritlm.runtime._native",
    "".join(f'#include "{h}"\n' for h in HEADERS),
    sources=sorted(glob.glob(os.path.join("native", "*.c")) + glob.glob(os.path.join("native", "kernels", "*.c"))),
    include_dirs=["native"],
    # headers too, so `make native` (and `make test`, which runs it) rebuilds after any edit under native/
    depends=sorted(glob.glob(os.path.join("native", "*.h")) + glob.glob(os.path.join("native", "kernels", "*.h"))),
    # Portable baseline; SIMD kernels enable their ISA per function and are chosen at run time.
    extra_compile_args=["-O3", "-std=c11", "-pthread", "-ffp-contract=off", "-Wall", "-Wextra"],
    extra_link_args=["-pthread", "-lm"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
