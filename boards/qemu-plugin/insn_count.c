/*
 * bitspike instruction counter: a QEMU TCG plugin (plugin API version 1, QEMU 7.2).
 *
 * Counts every executed guest instruction with an inline add, and reports how many were
 * executed between the first instruction of the start marker function and the first
 * instruction of the end marker function, once per start/end pair. The board app calls the
 * markers around each inference; xtask finds their addresses in the ELF symbol table.
 *
 * With a layer marker (the runtime's observer calls it after each layer), it also writes, before
 * each "insns N" line, one line "layers N1 N2 ..." with the instructions executed from the
 * start marker to each layer marker: layer k took N(k+1) - N(k).
 *
 * Arguments (-plugin libinsn_count.so,start=0xADDR,end=0xADDR[,layer=0xADDR],out=PATH):
 *   start, end  addresses of the marker functions (the Thumb bit is ignored)
 *   layer       optional address of the per-layer marker function
 *   out         file that receives one line "insns N" per inference and "total N" at exit
 *   profile     optional file that receives, at exit, one line "0xPC N" for every instruction
 *               address below 1 MiB that executed between the markers (a flat profile of the
 *               inferences; map the addresses to source lines with llvm-addr2line on the ELF)
 *
 * Counts are exact and repeatable: one vCPU, every instruction counted when it executes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t executed;  /* instructions executed so far (inline counter) */
static uint64_t started;   /* value of `executed` at the last start marker */
static int inside;         /* between a start and an end marker */
static uint64_t start_addr, end_addr, layer_addr;
static int have_layer;
static FILE *out;
#define MAX_MARKS 512
static uint64_t marks[MAX_MARKS];
#define PROFILE_SPAN (1u << 20)
static uint64_t *profile;          /* per half-word address below PROFILE_SPAN, when asked */
static uint64_t *profiled;         /* sums of `profile` over the inferences */
static const char *profile_path; /* instructions from the start marker to each layer marker */
static size_t n_marks;

static void on_start(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    (void)udata;
    started = executed;
    inside = 1;
    n_marks = 0;
    if (profile != NULL) {
        memset(profile, 0, PROFILE_SPAN / 2 * sizeof(uint64_t));
    }
}

static void on_layer(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    (void)udata;
    if (inside && n_marks < MAX_MARKS) {
        marks[n_marks++] = executed - started;
    }
}

static void on_end(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    (void)udata;
    if (inside) {
        if (have_layer) {
            fprintf(out, "layers");
            for (size_t i = 0; i < n_marks; i++) {
                fprintf(out, " %" PRIu64, marks[i]);
            }
            fprintf(out, "\n");
        }
        fprintf(out, "insns %" PRIu64 "\n", executed - started);
        if (profile != NULL) {
            for (uint64_t i = 0; i < PROFILE_SPAN / 2; i++) {
                profiled[i] += profile[i];
            }
        }
        fflush(out);
        inside = 0;
    }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn) & ~(uint64_t)1;
        /* The marker callbacks run before the instruction's own count is added. */
        if (pc == start_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else if (pc == end_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else if (have_layer && pc == layer_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_layer, QEMU_PLUGIN_CB_NO_REGS, NULL);
        }
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &executed, 1);
        if (profile != NULL && pc < PROFILE_SPAN) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                       &profile[pc / 2], 1);
        }
    }
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    fprintf(out, "total %" PRIu64 "\n", executed);
    fclose(out);
    if (profile != NULL) {
        FILE *p = fopen(profile_path, "w");
        if (p != NULL) {
            for (uint64_t i = 0; i < PROFILE_SPAN / 2; i++) {
                if (profiled[i] != 0) {
                    fprintf(p, "0x%" PRIx64 " %" PRIu64 "\n", i * 2, profiled[i]);
                }
            }
            fclose(p);
        }
    }
}

static int parse_addr(const char *value, uint64_t *addr)
{
    char *end = NULL;
    *addr = strtoull(value, &end, 0);
    return end != value && *end == '\0';
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    const char *path = NULL;
    int have_start = 0, have_end = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "start=", 6) == 0) {
            have_start = parse_addr(a + 6, &start_addr);
        } else if (strncmp(a, "end=", 4) == 0) {
            have_end = parse_addr(a + 4, &end_addr);
        } else if (strncmp(a, "layer=", 6) == 0) {
            have_layer = parse_addr(a + 6, &layer_addr);
            layer_addr &= ~(uint64_t)1;
        } else if (strncmp(a, "profile=", 8) == 0) {
            profile_path = a + 8;
        } else if (strncmp(a, "out=", 4) == 0) {
            path = a + 4;
        } else {
            fprintf(stderr, "insn_count: unknown argument %s\n", a);
            return -1;
        }
    }
    if (!have_start || !have_end || path == NULL) {
        fprintf(stderr, "insn_count: needs start=ADDR,end=ADDR,out=PATH\n");
        return -1;
    }
    start_addr &= ~(uint64_t)1;
    end_addr &= ~(uint64_t)1;
    if (profile_path != NULL) {
        profile = calloc(PROFILE_SPAN / 2, sizeof(uint64_t));
        profiled = calloc(PROFILE_SPAN / 2, sizeof(uint64_t));
        if (profile == NULL || profiled == NULL) {
            fprintf(stderr, "insn_count: no memory for the profile\n");
            return -1;
        }
    }
    out = fopen(path, "w");
    if (out == NULL) {
        fprintf(stderr, "insn_count: cannot open %s\n", path);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
