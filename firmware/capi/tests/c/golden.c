/* A C program on the C API: load a model, bind an arena, run every golden vector of a vector
 * file (docs/c.md) and compare each output with the host's, bit for bit. Built by
 * `cargo xtask test` with the host's C compiler (-std=c99 -Wall -Wextra -Werror) against
 * libbitspike.a; usage: golden MODEL.bsm VECTORS.bsv. Exit 0 when every output matches. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitspike.h"

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        fclose(f);
        free(b);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static uint32_t u32_at(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int fail(const char *what, const bitspike_error *err) {
    char text[160];
    bitspike_error_text(err, text, sizeof text);
    fprintf(stderr, "%s: %s (%s)\n", what, text, bitspike_status_str(err->status));
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: golden MODEL.bsm VECTORS.bsv\n");
        return 2;
    }
    size_t model_len = 0, vec_len = 0;
    uint8_t *model_bytes = read_file(argv[1], &model_len);
    uint8_t *vec = read_file(argv[2], &vec_len);
    if (!model_bytes || !vec) {
        return 2;
    }
    if (vec_len < 28 || memcmp(vec, "BSVECTOR", 8) != 0) {
        fprintf(stderr, "%s: not a vector file\n", argv[2]);
        return 2;
    }
    uint32_t count = u32_at(vec + 12), in_len = u32_at(vec + 16), out_len = u32_at(vec + 20);

    bitspike_model model;
    bitspike_interpreter interp;
    bitspike_error err;
    if (bitspike_load(model_bytes, model_len, &model, &err) != BITSPIKE_STATUS_OK) {
        return fail(argv[1], &err);
    }
    if (bitspike_input_len(&model) != in_len || bitspike_output_len(&model) != out_len) {
        fprintf(stderr, "%s: the vectors do not fit the model\n", argv[2]);
        return 2;
    }
    uint8_t *arena = malloc(bitspike_arena_bytes(&model) + 1);
    int32_t *out = malloc(sizeof(int32_t) * (out_len + 1));
    if (!arena || !out) {
        return 2;
    }
    if (bitspike_bind(&model, arena, bitspike_arena_bytes(&model), &interp, &err) !=
        BITSPIKE_STATUS_OK) {
        return fail("bind", &err);
    }
    const uint8_t *inputs = vec + 24, *expected = vec + 24 + (size_t)count * in_len;
    unsigned mismatches = 0;
    for (uint32_t k = 0; k < count; k++) {
        if (bitspike_run(&interp, inputs + (size_t)k * in_len, in_len, out, out_len, &err) !=
            BITSPIKE_STATUS_OK) {
            return fail("run", &err);
        }
        for (uint32_t j = 0; j < out_len; j++) {
            int32_t want = (int32_t)u32_at(expected + 4 * ((size_t)k * out_len + j));
            if (out[j] != want) {
                mismatches++;
                fprintf(stderr, "vector %u: output %u is %d, the host computed %d\n", k, j,
                        (int)out[j], (int)want);
            }
        }
    }
    /* The last output's softmax: its class is the argmax, its probabilities sum to 1. */
    float *probs = malloc(sizeof(float) * (out_len + 1));
    size_t class = SIZE_MAX;
    if (!probs ||
        bitspike_softmax(&model, out, out_len, probs, &class) != BITSPIKE_STATUS_OK ||
        class != bitspike_argmax(out, out_len)) {
        fprintf(stderr, "bitspike_softmax failed or disagrees with bitspike_argmax\n");
        return 1;
    }
    float total = 0.0f;
    for (uint32_t j = 0; j < out_len; j++) {
        total += probs[j];
    }
    if (total < 0.999f || total > 1.001f) {
        fprintf(stderr, "the softmax sums to %f\n", (double)total);
        return 1;
    }
    /* A bad model through the C API gives its status, not a fault. */
    model_bytes[0] ^= 0xff;
    bitspike_model bad;
    if (bitspike_load(model_bytes, model_len, &bad, &err) != BITSPIKE_STATUS_BAD_MAGIC) {
        fprintf(stderr, "a corrupt model loaded, or not with BITSPIKE_STATUS_BAD_MAGIC\n");
        return 1;
    }
    printf("%s: %u vectors, %u mismatches, argmax of the last %u (probability %.3f)\n", argv[1],
           count, mismatches, (unsigned)class, (double)probs[class]);
    free(arena);
    free(out);
    free(probs);
    free(model_bytes);
    free(vec);
    return mismatches == 0 ? 0 : 1;
}
