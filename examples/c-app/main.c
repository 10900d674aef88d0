/* A plain C application on the bitspike C API: the model and its golden vectors compiled in as
 * C sources (model.h, model.c from `bitspike c-source` or `bitspike export --c-source`), each
 * vector run between two markers (the instruction counter's start and end, with a third after
 * each layer through `bitspike_run_observed`'s callback), every output compared
 * with the host's, and a corrupt copy of the model refused with its status. Reports one line,
 * `bitspike-result vectors=N mismatches=M`, and exits 0 when every output matches. */
#include <stddef.h>
#include <stdint.h>

#include "bitspike.h"
#include "model.h"
#include "semihosting.h"

/* Any alignment works; on a word boundary the kernels read their scratch and tensors a word at
 * a time (`bitspike_bind` accepts any arena, the fast paths want 4 bytes). */
static uint8_t arena[BITSPIKE_ARENA_BYTES] __attribute__((aligned(8)));
static int32_t output[BITSPIKE_OUTPUT_LEN];
static uint8_t corrupt[BITSPIKE_MODEL_BYTES];

/* The instruction counter counts between the first two calls (by their addresses) and notes
 * how far it got at each call of the third, after each layer. */
volatile uint32_t bitspike_mark;
void bitspike_mark_start(void) __attribute__((noinline));
void bitspike_mark_end(void) __attribute__((noinline));
void bitspike_mark_layer(void) __attribute__((noinline));
void bitspike_mark_start(void) { bitspike_mark = 1; }
void bitspike_mark_end(void) { bitspike_mark = 2; }
void bitspike_mark_layer(void) { bitspike_mark = 3; }

/* Called by `bitspike_run_observed` after each layer: where a profiler would read a clock. */
static void after_layer(size_t layer, void *context) {
    (void)layer;
    (void)context;
    bitspike_mark_layer();
}

/* `text`, then the unsigned number `n`. */
static void say_number(const char *text, unsigned long n) {
    char digits[24];
    size_t i = sizeof digits - 1;
    digits[i] = '\0';
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0 && i > 0);
    semihosting_write(text);
    semihosting_write(&digits[i]);
}

static int failed(const char *what, const bitspike_error *err) {
    char text[160];
    bitspike_error_text(err, text, sizeof text);
    semihosting_write(what);
    semihosting_write(": ");
    semihosting_write(text);
    semihosting_write("\n");
    return 1;
}

int main(void) {
    bitspike_model model;
    bitspike_interpreter interp;
    bitspike_error err;
    if (bitspike_load(bitspike_model_data, BITSPIKE_MODEL_BYTES, &model, &err) !=
        BITSPIKE_STATUS_OK) {
        return failed("load", &err);
    }
    if (bitspike_bind(&model, arena, sizeof arena, &interp, &err) != BITSPIKE_STATUS_OK) {
        return failed("bind", &err);
    }
    unsigned long mismatches = 0;
    for (size_t k = 0; k < BITSPIKE_VECTORS; k++) {
        bitspike_mark_start();
        bitspike_status st =
            bitspike_run_observed(&interp, bitspike_vector_inputs[k], BITSPIKE_INPUT_LEN, output,
                                  BITSPIKE_OUTPUT_LEN, after_layer, NULL, &err);
        bitspike_mark_end();
        if (st != BITSPIKE_STATUS_OK) {
            return failed("run", &err);
        }
        for (size_t j = 0; j < BITSPIKE_OUTPUT_LEN; j++) {
            if (output[j] != bitspike_vector_outputs[k][j]) {
                mismatches++;
            }
        }
    }
    /* A corrupt model is refused with its status, not run and not a fault. */
    for (size_t i = 0; i < BITSPIKE_MODEL_BYTES; i++) {
        corrupt[i] = bitspike_model_data[i];
    }
    corrupt[BITSPIKE_MODEL_BYTES - 1] ^= 0x5a;
    bitspike_model bad;
    bitspike_status st = bitspike_load(corrupt, BITSPIKE_MODEL_BYTES, &bad, &err);
    say_number("bitspike-result vectors=", BITSPIKE_VECTORS);
    say_number(" mismatches=", mismatches);
    say_number(" corrupt-status=", (unsigned long)st);
    say_number(" label=", (unsigned long)bitspike_argmax(output, BITSPIKE_OUTPUT_LEN));
    semihosting_write("\n");
#ifdef BITSPIKE_HAS_LABELS
    semihosting_write("bitspike-label ");
    semihosting_write(bitspike_labels[bitspike_argmax(output, BITSPIKE_OUTPUT_LEN)]);
    semihosting_write("\n");
#endif
    return mismatches == 0 && st == BITSPIKE_STATUS_PAYLOAD_CRC ? 0 : 1;
}
