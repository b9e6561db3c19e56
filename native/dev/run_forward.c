/* run_forward.c - replays the forward passes of a file written by native/dev/dump_model.py (a model's tl_config and
 * tensors, the passes' tokens, and the logits another build of the engine gave) and compares the logits bit for bit.
 * make test-arm runs it cross-compiled under qemu-aarch64 against the x86-64 build's logits, once per ARM64 level.
 * Usage: run_forward FILE  exits 1 if any logit differs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/kernels.h"
#include "../tritlm.h"

_Static_assert(sizeof(tl_layer) == 11 * sizeof(tl_tensor), "tl_layer is read as 11 tl_tensors");

enum { N_CTX = 64 }; /* positions of the sequence, as in dump_model.py */

static FILE *in;
static const char *path;

static void *read_bytes(void *dst, size_t n) {
    if (!dst || fread(dst, 1, n, in) != n) {
        fprintf(stderr, "error: %s: truncated or out of memory\n", path);
        exit(2);
    }
    return dst;
}

static tl_tensor read_tensor(void) {
    struct { int32_t type, present; int64_t rows, cols; float scale; int32_t pad; int64_t nbytes; } rec;
    read_bytes(&rec, sizeof rec);
    tl_tensor t = {NULL, rec.type, rec.rows, rec.cols, rec.scale};
    if (rec.present) t.data = read_bytes(malloc(rec.nbytes), rec.nbytes);
    return t;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: run_forward FILE\n");
        return 2;
    }
    path = argv[1];
    if (!(in = fopen(path, "rb"))) {
        fprintf(stderr, "error: cannot open %s\n", path);
        return 2;
    }
    // the model, as the runtime hands it to tl_model_new
    char magic[8];
    tl_config cfg;
    int32_t n_tensors;
    read_bytes(magic, 8);
    if (memcmp(magic, "TLFWD001", 8) != 0) {
        fprintf(stderr, "error: %s is not a dump_model.py file\n", path);
        return 2;
    }
    read_bytes(&cfg, sizeof cfg);
    cfg.weights_mapped = 0; /* the tensors below are malloc'd, not the file's mapping */
    read_bytes(&n_tensors, 4);
    if (n_tensors != 3 + 11 * cfg.n_layer) {
        fprintf(stderr, "error: %s: %d tensors for %d layers\n", path, n_tensors, cfg.n_layer);
        return 2;
    }
    tl_tensor token_embd = read_tensor(), output_norm = read_tensor(), output = read_tensor();
    tl_layer *layers = malloc(sizeof *layers * cfg.n_layer);
    for (int32_t l = 0; l < cfg.n_layer; l++) {
        tl_tensor *field = (tl_tensor *)&layers[l]; /* tl_layer is 11 tl_tensors in the file's order */
        for (int i = 0; i < 11; i++) field[i] = read_tensor();
    }
    char err[256];
    tl_model *m = tl_model_new(&cfg, &token_embd, &output_norm, &output, layers, 2, err, sizeof err);
    if (!m) {
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    // the passes, each compared with the logits of the build that wrote the file
    int32_t n_passes, n_tokens = 0, differ = 0;
    float max_diff = 0;
    read_bytes(&n_passes, 4);
    tl_ctx *ctx = tl_ctx_new(m);
    tl_seq *seq = tl_seq_new(m, N_CTX);
    if (!ctx || !seq) return fprintf(stderr, "error: out of memory\n"), 2;
    int32_t(*tokens)[N_CTX] = malloc(sizeof *tokens * n_passes), *counts = malloc(4 * n_passes);
    for (int32_t p = 0; p < n_passes; p++) {
        read_bytes(&counts[p], 4);
        if (counts[p] <= 0 || counts[p] > N_CTX) return fprintf(stderr, "error: %s: pass of %d tokens\n", path, counts[p]), 2;
        read_bytes(tokens[p], 4 * counts[p]);
    }
    for (int32_t p = 0; p < n_passes; p++) {
        int32_t n = counts[p];
        float *want = read_bytes(malloc(sizeof(float) * n * cfg.n_vocab), sizeof(float) * n * cfg.n_vocab);
        float *got = malloc(sizeof(float) * n * cfg.n_vocab);
        tl_seq *seqs[N_CTX];
        for (int32_t i = 0; i < n; i++) seqs[i] = seq;
        if (tl_forward(ctx, seqs, tokens[p], n, NULL, got, err, sizeof err) != 0) {
            fprintf(stderr, "error: %s\n", err);
            return 2;
        }
        for (int64_t i = 0; i < (int64_t)n * cfg.n_vocab; i++) {
            float d = got[i] > want[i] ? got[i] - want[i] : want[i] - got[i];
            if (memcmp(&got[i], &want[i], 4) != 0) differ++, max_diff = d > max_diff ? d : max_diff;
        }
        n_tokens += n;
        free(want), free(got);
    }
    tl_seq_free(seq);
    tl_ctx_free(ctx);
    tl_model_free(m);
    printf("%s: %s kernels, %d passes (%d tokens, %d logits): %d differ from the file's (max |diff| %g)\n",
           differ ? "FAIL" : "ok", tl_isa(), n_passes, n_tokens, n_tokens * cfg.n_vocab, differ, max_diff);
    return differ != 0;
}
