"""Model's private copy of the weights on transparent huge pages (the default where Linux offers them) against the
file's own mapping (use_mmap=True): the copy holds the file's tensor bytes exactly, from a 2 MiB boundary, in a
mapping the kernel may back with huge pages; the engine reads the copy, not the file; the logits are the same bits;
and the file's pages leave the process as they are copied, so resident memory holds the weights once."""

import json
import mmap
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tritlm.runtime import Model
from tritlm.runtime.gguf import HUGE_PAGE, huge_pages_available, read_gguf

needs_thp = pytest.mark.skipif(not huge_pages_available(), reason="no transparent huge pages on this system")


def test_copy_holds_the_tensor_bytes_from_a_huge_page_boundary(embedded_gguf):
    with open(embedded_gguf, "rb") as f:
        raw = f.read()
    with read_gguf(embedded_gguf) as gguf:
        copy, start = gguf.copy_tensor_data()
        with memoryview(copy) as view:
            data = np.frombuffer(view, np.uint8)
            assert (data.ctypes.data + start) % HUGE_PAGE == 0
            assert data[start : start + len(raw) - gguf.data_offset].tobytes() == raw[gguf.data_offset :]
            del data
        copy.close()


@needs_thp
def test_engine_reads_the_copy_and_gives_the_same_logits(embedded_gguf, tmp_path):
    path = str(tmp_path / "model.gguf")
    shutil.copy(embedded_gguf, path)
    tokens = [1, 450, 3483, 310, 3444, 338]
    with Model(path, threads=2, use_mmap=True) as mapped, Model(path, threads=2) as copied:
        expected, got = mapped.logits(tokens), copied.logits(tokens)
        assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
        # the file's blk.0.ffn_gate weights zeroed under both: the mapping sees it, the copy does not
        with read_gguf(path) as f:
            t = next(t for t in f.tensors if t.name == "blk.0.ffn_gate.weight")
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
            m[t.offset : t.offset + t.nbytes] = bytes(t.nbytes)
        assert np.array_equal(copied.logits(tokens).view(np.uint32), expected.view(np.uint32))
        assert not np.array_equal(mapped.logits(tokens), expected)


RESIDENT = """
import json, sys
from tritlm.runtime import Model

def status():
    lines = [line.split() for line in open("/proc/self/status")]
    return {line[0].rstrip(":"): int(line[1]) * 1024 for line in lines if line[0] in ("VmRSS:", "RssFile:", "RssAnon:")}

before = status()
model = Model(sys.argv[1], threads=1, use_mmap=sys.argv[2] == "1")
model.logits([1, 2, 3])
eligible = []
with open("/proc/self/smaps") as f:  # the mappings the kernel may back with huge pages
    for line in f:
        if "-" in line.split()[0]:  # a mapping's first line: its address range
            lo, hi = (int(a, 16) for a in line.split()[0].split("-"))
            size = hi - lo
        elif line.startswith("THPeligible:") and line.split()[1] == "1":
            eligible.append(size)
print(json.dumps({"before": before, "after": status(), "eligible": eligible}))
"""


@needs_thp
def test_resident_memory_holds_the_weights_once(embedded_gguf):
    def load(use_mmap):
        done = subprocess.run(
            [sys.executable, "-c", RESIDENT, embedded_gguf, str(int(use_mmap))],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)

    with read_gguf(embedded_gguf) as f:
        data = f.size - f.data_offset
    mapped, copied = load(True), load(False)

    def grown(run, key):
        return run["after"][key] - run["before"][key]

    # the file's pages were released as they were copied, and the copy holds them instead: the same total
    assert grown(mapped, "RssFile") - grown(copied, "RssFile") > 0.9 * data
    assert grown(copied, "RssAnon") - grown(mapped, "RssAnon") > 0.9 * data
    assert abs(grown(copied, "VmRSS") - grown(mapped, "VmRSS")) < HUGE_PAGE + data / 16  # its last huge page is whole
    assert max(copied["eligible"]) >= data  # the copy's mapping may take huge pages
