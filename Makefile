# tritlm: `make install` once (what running models needs), then `make demo`; `make test` adds the test
# dependencies (torch, transformers, the API clients) and runs the default suite.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
TRITLM  := $(VENV)/bin/tritlm
CACHE   := .cache

.PHONY: install install-test native demo test lint typecheck test-slow load-test bench bench-modes bench-sparse bench-peers bench-peers-avx2 bench-kernels fuzz clean chromium llama-cpp ray \
	sanitize sanitize-asan sanitize-tsan test-arm arm-toolchain

$(VENV)/.installed: setup.py pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip setuptools wheel cffi
	$(VPY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Rebuild the C core after editing native/ (install does it once; setuptools skips it when nothing changed, so the
# tests never run a stale build).
native: install
	$(VPY) setup.py -q build_ext --inplace

# The chat page test drives Debian's headless Chromium through its own driver (Selenium downloads nothing).
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver)

# llama.cpp's Llama 3 vocabulary and its tokenizer test vectors (tests/test_tokenizer.py), taken once from the
# llama-cpp-python sdist on PyPI (downloaded, not built; `--no-binary :all:` would build its backend from source).
LLAMA_VOCAB := $(CACHE)/ggml-vocab-llama-bpe.gguf

$(LLAMA_VOCAB): | $(VENV)/.installed
	mkdir -p $(CACHE)/sdist
	$(VPY) -m pip download -q --no-deps --no-binary llama-cpp-python -d $(CACHE)/sdist llama-cpp-python==0.3.36
	tar -xzf $(CACHE)/sdist/llama_cpp_python-0.3.36.tar.gz -C $(CACHE) --strip-components=4 --wildcards \
		'*/vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf*'
	touch $@

test: install-test native chromium $(LLAMA_VOCAB)
	$(VPY) -m pytest -q tests
	$(MAKE) test-arm

# The slow tests (2B-sized checks, llama.cpp reading our files, a local Ray cluster): pytest.ini deselects them by default.
# Lint: ruff's rules and its formatter; typecheck: mypy (settings for both in pyproject.toml). CI runs both.
lint: install-test
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .

# mypy reads converter/, runtime/ and cluster/ as the tritlm.* subpackages they install as (setup.py's package_dir),
# through links in build/typecheck/tritlm/: over the folders themselves it cannot resolve `from tritlm.runtime.x
# import y` and takes every such import as an unknown module, checking nothing that crosses one.
TYPECHECK := build/typecheck

typecheck: install-test
	rm -rf $(TYPECHECK)/tritlm && mkdir -p $(TYPECHECK)/tritlm
	ln -s $(abspath $(wildcard tritlm/*.py) runtime converter cluster) $(TYPECHECK)/tritlm/
	cd $(TYPECHECK) && $(abspath $(VPY)) -m mypy --config-file $(abspath pyproject.toml) tritlm

test-slow: install-test llama-cpp ray
	$(VPY) -m pytest -q tests -m slow

# Ray Serve and Ray Data (the optional extra tritlm[ray]) for serve --replicas, batch --ray and their tests.
ray: install
	$(VPY) -m pip install -q -e '.[ray]'

# The embedded model (models/README.md), converted once and re-converted when it or the converter changes, to
# models/<name>.<type>.gguf: the name scripts/setup_and_serve.py and `tritlm serve -hf` give it (converter/cached.py).
TINY      := models/bitnet-tiny
TINY_GGUF := models/bitnet-tiny.i2_s.gguf

models/bitnet-tiny.%.gguf: $(TINY)/model.safetensors $(TINY)/config.json $(TINY)/tokenizer.json \
		$(wildcard converter/*.py converter/families/*.py) | $(VENV)/.installed
	$(TRITLM) convert $(TINY) -o $@ --type $*

demo: install $(TINY_GGUF)
	@echo "model: $(TINY_GGUF)"
	$(TRITLM) run -m $(TINY_GGUF) -p "class Stack:$$(printf '\n    ')def __init__(self" -n 80 --temp 0.6 --top-k 20 --seed 1 --echo

# The server under hostile mixed load on loopback (scripts/load_test.py stress): bounded, stops by itself, and
# fails on any wrong answer, unexpected status, busy slot at the end or RSS not back near its baseline.
load-test: install-test $(TINY_GGUF)
	$(VPY) scripts/load_test.py stress -m $(TINY_GGUF) -c 256 --clients 16 --duration 30

clean:
	rm -rf build *.egg-info runtime/_native* $(CACHE) bench-out models/*.gguf
	find . -name __pycache__ -prune -exec rm -rf {} +

# Speed (runtime/bench.py, bench/peers.py): the 2B-4T shape with random weights, converted to each ternary type.
SYNTH_2B     := $(CACHE)/synth-2b-4t
BENCH_TYPES  := tq2_0 tq1_0 i2_s
BENCH_GGUFS  := $(foreach t,$(BENCH_TYPES),$(SYNTH_2B)-$(t).gguf)
LLAMA_CPP_PY := llama-cpp-python==0.3.36
WHEELS       := $(CACHE)/wheels

$(SYNTH_2B)/.complete: | $(VENV)/.installed
	$(TRITLM) synth --preset 2b-4t -o $(SYNTH_2B)
	touch $@

$(SYNTH_2B)-%.gguf: $(SYNTH_2B)/.complete
	$(TRITLM) convert $(SYNTH_2B) -o $@ --type $*

bench: $(BENCH_GGUFS)
	$(TRITLM) bench -t 2 $(foreach f,$(BENCH_GGUFS),-m $(f))

# b1.58 against BitNet a4.8 and Q-Sparse (bench/modes.py, alternating runs): the embedded model and its trained
# variants (+ the b1.58 file run with --act-topk 0.5), then the 2B-4T preset with each mode's quantization_config.
MODE_TINY := $(foreach v,bitnet-tiny bitnet-tiny-a4.8 bitnet-tiny-qsparse,models/$(v).i2_s.gguf)
MODE_2B   := $(foreach m,a4.8 qsparse,$(SYNTH_2B)-$(m)-i2_s.gguf)

models/bitnet-tiny-%.i2_s.gguf: models/bitnet-tiny-%/model.safetensors | $(VENV)/.installed
	$(TRITLM) convert models/bitnet-tiny-$* -o $@ --type i2_s

$(SYNTH_2B)-%-i2_s.gguf: $(SYNTH_2B)/.complete
	$(VPY) bench/modes.py --checkpoint $* $(SYNTH_2B) $(SYNTH_2B)-$*
	$(TRITLM) convert $(SYNTH_2B)-$* -o $@ --type i2_s

bench-modes: $(MODE_TINY) $(SYNTH_2B)-i2_s.gguf $(MODE_2B)
	$(VPY) bench/modes.py -t 2 -r 9 $(MODE_TINY) $(TINY_GGUF):0.5
	$(VPY) bench/modes.py -t 2 -r 5 $(SYNTH_2B)-i2_s.gguf $(MODE_2B)

# Exact relu² sparsity (sparse vs --no-sparse decode, alternating in one process): the embedded model in each ternary
# type, then the 2B-4T preset biased to the embedded model's sparsity (bench/modes.py with_sparsity_of says how).
SPARSE_TINY := $(foreach t,i2_s tq2_0 tq1_0,models/bitnet-tiny.$(t).gguf)
SPARSE_2B   := $(SYNTH_2B)-i2_s-sparsity.gguf

$(SPARSE_2B): $(SYNTH_2B)-i2_s.gguf $(TINY_GGUF)
	$(VPY) bench/modes.py -t 2 --sparsity-of $(TINY_GGUF) $< $@

bench-sparse: $(SPARSE_TINY) $(SPARSE_2B)
	for f in $(SPARSE_TINY); do $(VPY) bench/modes.py -t 2 -r 9 -p 16 $$f:dense $$f || exit 1; done
	$(VPY) bench/modes.py -t 2 -r 5 -p 16 -n 32 $(SPARSE_2B):dense $(SPARSE_2B)

# llama.cpp built from source once (native CPU flags) into a cached wheel; nothing of it enters the repo. Always from
# source (--no-binary, --no-cache-dir): pip would otherwise reuse a wheel it built before with other CMAKE_ARGS.
LLAMA_WHEEL = CMAKE_BUILD_PARALLEL_LEVEL=2 nice $(VPY) -m pip wheel -q --no-cache-dir --no-binary llama-cpp-python --no-deps $(LLAMA_CPP_PY)
$(WHEELS)/.llama-cpp-python: | $(VENV)/.installed
	CMAKE_ARGS="-DGGML_NATIVE=ON" $(LLAMA_WHEEL) -w $(WHEELS)
	touch $@

llama-cpp: $(WHEELS)/.llama-cpp-python
	$(VPY) -m pip install -q --only-binary llama-cpp-python --find-links $(WHEELS) $(LLAMA_CPP_PY)

# With IK_LLAMA_DIR=<an ik_llama.cpp build directory> (built by hand, outside this tree), ik_llama.cpp joins on the
# i2_s file itself (it reads i2_s, not tq1_0/tq2_0) and on its own requantizations of it (its llama-quantize): the
# ternary layers as IQ2_BN, IQ2_BN_R4 and IQ1_BN with the output matrix in bf16 (lossless, as ours), and IQ2_BN_R4
# with a Q6_K output matrix (its fastest) beside our own q6_k-output file.
IK_TYPES := iq2_bn iq2_bn_r4 iq1_bn
IK_GGUFS := $(foreach t,$(IK_TYPES),$(SYNTH_2B)-ik-$(t).gguf) $(SYNTH_2B)-ik-iq2_bn_r4-q6_k.gguf
IK_QUANTIZE = $(IK_LLAMA_DIR)/bin/llama-quantize --allow-requantize

$(SYNTH_2B)-ik-%-q6_k.gguf: $(SYNTH_2B)-i2_s.gguf
	$(IK_QUANTIZE) --output-tensor-type q6_K $< $@.tmp $(shell echo $* | tr a-z A-Z) 2 && mv $@.tmp $@

$(SYNTH_2B)-ik-%.gguf: $(SYNTH_2B)-i2_s.gguf
	$(IK_QUANTIZE) --token-embedding-type bf16 --output-tensor-type bf16 $< $@.tmp $(shell echo $* | tr a-z A-Z) 2 \
		&& mv $@.tmp $@

$(SYNTH_2B)-i2_s-q6_k.gguf: $(SYNTH_2B)-i2_s.gguf
	$(TRITLM) quantize $< $@ --output-type q6_k

bench-peers: $(BENCH_GGUFS) llama-cpp $(if $(IK_LLAMA_DIR),$(IK_GGUFS) $(SYNTH_2B)-i2_s-q6_k.gguf)
	$(VPY) bench/peers.py -t 2 $(BENCH_GGUFS) $(if $(IK_LLAMA_DIR),$(SYNTH_2B)-i2_s-q6_k.gguf --ik $(IK_GGUFS))

# An AVX2 machine on this one: both engines held to AVX2 code paths, tritlm by TRITLM_ISA=avx2 and llama.cpp by a
# build of its own without AVX-512 or VNNI (installed beside the venv's, in $(LLAMA_AVX2), first on the path).
# AVX2_ISA=avxvnni: tritlm on AVX2 with AVX-VNNI's dot instead (an Intel client core from Alder Lake on).
AVX2_ISA ?= avx2
LLAMA_AVX2 := $(CACHE)/llama-cpp-avx2
$(LLAMA_AVX2)/.installed: | $(VENV)/.installed
	rm -rf $(LLAMA_AVX2) && mkdir -p $(LLAMA_AVX2)/wheel
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
		-DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF" \
		$(LLAMA_WHEEL) -w $(LLAMA_AVX2)/wheel
	$(VPY) -m pip install -q --no-deps --target $(LLAMA_AVX2) $(LLAMA_AVX2)/wheel/*.whl
	touch $@

bench-peers-avx2: $(BENCH_GGUFS) $(LLAMA_AVX2)/.installed
	TRITLM_ISA=$(AVX2_ISA) PYTHONPATH=$(abspath $(LLAMA_AVX2)) $(VPY) bench/peers.py -t 2 $(BENCH_GGUFS)

# Ray Serve: per-request overhead over plain `tritlm serve`, aggregate tokens/s of 1 and 2 replicas at 1 thread each.
.PHONY: bench-ray
bench-ray: $(SYNTH_2B)-i2_s.gguf ray
	$(VPY) bench/ray_replicas.py $<

# Each C kernel at the 2B-4T shapes, each ISA next to its reference (native/dev/bench_kernels.c); ARGS="0.3 tq1_0":
# seconds per figure, one type.
# Coverage-guided fuzzing of the GGUF loader (atheris) from our own files, for FUZZ_SECONDS; findings are saved
# as crash-*/timeout-*/oom-* in the repo root and fail the target. The corpus grows in $(CACHE)/fuzz-gguf.
FUZZ_SECONDS ?= 60

fuzz: install
	nice $(VPY) scripts/fuzz_gguf.py --seconds $(FUZZ_SECONDS) --cache $(CACHE)

bench-kernels:
	mkdir -p build && $(CC) -O3 -std=c11 -pthread -ffp-contract=off -Inative -o build/bench_kernels \
		native/dev/bench_kernels.c native/kernels/*.c native/threads.c native/probe.c -lm && build/bench_kernels $(ARGS)

# The C core built with AddressSanitizer + UndefinedBehaviorSanitizer (sanitize-asan), and separately with
# ThreadSanitizer (sanitize-tsan), then the kernel, engine and hostile-file tests run against each build. Each build
# lives in its own tree, build/sanitize-*/ (copies of runtime/, converter/, tritlm/ and tests/, the instrumented
# extension built in place there), so the normal extension is untouched. The interpreter itself is not instrumented,
# so the sanitizer's runtime must be loaded before it: LD_PRELOAD=$$(cc -print-file-name=libasan.so) (or libtsan.so).
# ASan's leak check is off (the interpreter keeps its allocations at exit); any other report stops the run, and
# pytest captures only Python's output (--capture=sys) so the report reaches the terminal.
SANITIZE_TESTS := tests/test_kernels.py tests/test_amx.py tests/test_tq1_0_lut.py tests/test_bf16_lut.py tests/test_kquants.py tests/test_engine.py tests/test_gguf_load.py \
	tests/test_model_args.py $(wildcard tests/test_hostile*.py tests/test_concurrency.py)
SANITIZE_CFLAGS_asan := -fsanitize=address,undefined -fno-sanitize-recover=undefined
SANITIZE_CFLAGS_tsan := -fsanitize=thread
# numpy's OpenBLAS and the tokenizers library run single-threaded: their uninstrumented threads hand work over in
# ways TSan cannot see (false reports); tests/tsan.supp lists the reports inside glibc.
SANITIZE_ENV := ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(abspath tests/tsan.supp) \
	OPENBLAS_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false

sanitize: sanitize-asan sanitize-tsan

sanitize-asan sanitize-tsan: sanitize-%: install-test
	rm -rf build/sanitize-$* && mkdir -p build/sanitize-$*
	cp -r runtime converter tritlm tests setup.py pytest.ini build/sanitize-$*/
	rm -f build/sanitize-$*/runtime/_native*
	ln -s ../../native ../../models build/sanitize-$*/
	cd build/sanitize-$* && CFLAGS="-g -fno-omit-frame-pointer $(SANITIZE_CFLAGS_$*)" LDFLAGS="$(SANITIZE_CFLAGS_$*)" \
		nice $(abspath $(VPY)) setup.py -q build_ext --inplace
	cd build/sanitize-$* && $(SANITIZE_ENV) LD_PRELOAD=$$($(CC) -print-file-name=lib$*.so) \
		$(abspath $(VPY)) -m pytest -q -p no:cacheprovider --capture=sys $(SANITIZE_TESTS)

# ARM64 without ARM hardware: the C core cross-compiled with Debian's gcc-aarch64-linux-gnu and run under qemu-aarch64
# as three CPUs: max (i8mm), cortex-a76 (dotprod), cortex-a53 (NEON only). native/dev/check_kernels.c checks every
# kernel against its reference bit for bit and that the CPU's table is the expected one; native/dev/run_forward.c
# replays the embedded model, converted to each weight type and written as bitnet.cpp does with a q6_k or q8_0
# embedding (tests/peer_files.py), and its logits must equal those this x86-64 build gave (native/dev/dump_model.py).
ARM_CC     := aarch64-linux-gnu-gcc
ARM_BUILD  := build/aarch64
ARM_CFLAGS := -O3 -std=c11 -pthread -ffp-contract=off -Wall -Inative
CORE_SRC   := $(wildcard native/*.c native/kernels/*.c)
ARM_OBJS   := $(patsubst native/%.c,$(ARM_BUILD)/%.o,$(CORE_SRC))
TINY_TYPES := i2_s tq1_0 tq2_0 f16 f32
ARM_MODELS := $(foreach t,$(TINY_TYPES),models/bitnet-tiny.$(t).gguf) $(ARM_BUILD)/tiny-embed-q6_k.gguf \
	$(ARM_BUILD)/tiny-embed-q8_0.gguf

arm-toolchain:
	@command -v $(ARM_CC) >/dev/null && command -v qemu-aarch64 >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq gcc-aarch64-linux-gnu qemu-user)

$(ARM_BUILD)/%.o: native/%.c $(wildcard native/*.h native/kernels/*.h) | arm-toolchain
	@mkdir -p $(dir $@) && $(ARM_CC) $(ARM_CFLAGS) -c -o $@ $<

$(ARM_BUILD)/check_kernels $(ARM_BUILD)/run_forward: $(ARM_BUILD)/%: $(ARM_BUILD)/dev/%.o $(ARM_OBJS)
	$(ARM_CC) -static -pthread -o $@ $^ -lm

$(ARM_BUILD)/tiny-embed-%.gguf: $(TINY)/model.safetensors tests/peer_files.py | $(VENV)/.installed
	mkdir -p $(ARM_BUILD) && PYTHONPATH=. $(VPY) -c \
		"from tests.peer_files import bitnet_cpp_gguf; bitnet_cpp_gguf('$(TINY)', '$@', embedding='$*')"

test-arm: install $(ARM_BUILD)/check_kernels $(ARM_BUILD)/run_forward $(ARM_MODELS)
	qemu-aarch64 -cpu max $(ARM_BUILD)/check_kernels i8mm neon dotprod i8mm
	qemu-aarch64 -cpu cortex-a76 $(ARM_BUILD)/check_kernels dotprod neon dotprod
	qemu-aarch64 -cpu cortex-a53 $(ARM_BUILD)/check_kernels neon neon
	for isa in dotprod neon; do TRITLM_ISA=$$isa qemu-aarch64 -cpu max $(ARM_BUILD)/check_kernels $$isa $$isa || exit 1; done
	for m in $(ARM_MODELS); do \
		dump=$(ARM_BUILD)/forward-$$(basename $$m .gguf).bin; \
		PYTHONPATH=. $(VPY) native/dev/dump_model.py $$m $$dump || exit 1; \
		for cpu in max cortex-a76 cortex-a53; do qemu-aarch64 -cpu $$cpu $(ARM_BUILD)/run_forward $$dump || exit 1; done; \
	done
