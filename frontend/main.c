/*
 * main.c - the `ditc` command line: one table of commands, one table of
 * options, the parser and the help that both are read by.
 *
 * A command is {name, synopsis, summary, details, handler}; an option is
 * {name, which commands take it, value kind, range or choices, one line of
 * help}.  The same option may have a row per group of commands when its
 * meaning differs between them (--output of run and of compile).  parse_args()
 * is a loop over the option table, `ditc help`, `ditc help COMMAND` and
 * `ditc COMMAND --help` print from the tables, so an option cannot be taken
 * without being documented.  Anything a command does not take is a usage
 * error (exit 2, "ditc: error: ..." and where the usage is); errors the user
 * can cause later exit 1 with one clear message.  The handlers live in the
 * cli_*.c files (cli.h).
 */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "frontend/cli.h"
#include "ir/fileio.h"

/* ---- the commands ---------------------------------------------------------------- */

enum {
  C_RUN = 1 << 0, C_SAMPLE = 1 << 1, C_CHECK = 1 << 2, C_IR = 1 << 3, C_STATS = 1 << 4, C_COMPARE = 1 << 5,
  C_MODELS = 1 << 6, C_BENCH = 1 << 7, C_COMPILE = 1 << 8, C_CACHE = 1 << 9, C_HELP = 1 << 10,
};
#define C_MODEL (C_RUN | C_SAMPLE | C_CHECK | C_IR | C_STATS | C_BENCH | C_COMPILE | C_CACHE)
#define C_PLAN (C_RUN | C_SAMPLE | C_BENCH) /* take --plan P.ditpack in place of MODEL */
#define C_ALL 0x7ff

static int cmd_help(const Opts *o);

typedef struct {
  const char *name;
  unsigned bit;
  const char *synopsis;  /* what follows "ditc NAME" in the usage line */
  const char *summary;   /* one line */
  const char *details;   /* more lines for `ditc NAME --help`, or NULL */
  int (*handler)(const Opts *);
} Command;

#define CACHE_DIR_TEXT "$DITC_CACHE_DIR, else $XDG_CACHE_HOME/ditc, else ~/.cache/ditc"

static const Command COMMANDS[] = {
    {"run", C_RUN, "MODEL|--plan P.ditpack --input F.safetensors --output F.safetensors [options]",
     "one forward pass: x, t, y from --input, `out` to --output",
     "With --cfg-scale S it runs forward_with_cfg (the reference forward_with_cfg); inputs may have any\n"
     "float or integer dtype.  MODEL needs --weights; a pack brings its own (or takes --weights).",
     cmd_run},
    {"sample", C_SAMPLE,
     "MODEL|--plan P.ditpack --sampler ddpm|ddim --steps N --cfg-scale S --labels L --output F [options]",
     "a whole DDPM/DDIM sampling run with classifier-free guidance",
     "The original DiT code's sampler (respacing, learned-range variance, its guidance convention).\n"
     "--init-noise and --step-noise replay given noise, else --seed draws it.  Output: `samples` and\n"
     "`labels` as safetensors, or a PNG grid when --output ends in .png.  A latent model's samples\n"
     "(in_channels 4) become images with --vae and --vae-weights (then `samples` are the images and `z`\n"
     "the latents, as run --entry decode reads them); its PNG needs them.  On emu and cuda the whole\n"
     "loop stays on the device (DITC_SAMPLE_ON_HOST=1: the host loop over forward passes instead).",
     cmd_sample},
    {"check", C_CHECK, "MODEL [options]", "parse, elaborate and verify MODEL; with --weights, bind them",
     "Both entries (forward, forward_with_cfg) are built, passed through the pipeline and verified.", cmd_check},
    {"ir", C_IR, "MODEL [options] | --ops | --passes-help", "print MODEL's IR, or the IR after a pass",
     "--dump-after NAME prints the IR after pass NAME (or after every pass: all) instead of at the end.", cmd_ir},
    {"stats", C_STATS, "MODEL [options]", "parameters, MACs and bytes of MODEL (the cost model)",
     "MACs count every contraction's multiply-accumulates (attention's QK^T and AV included).", cmd_stats},
    {"compare", C_COMPARE, "A.safetensors:TENSOR B.safetensors:TENSOR [--tol X]",
     "relative L2 error (and max abs error) of tensor A against tensor B",
     "Exits 1 when the shapes differ, a value is not finite, or the error is above --tol.", cmd_compare},
    {"models", C_MODELS, "", "list the named configurations (name, file)", NULL, cmd_models},
    {"bench", C_BENCH, "MODEL|--plan P.ditpack [options]", "time forward passes on a backend",
     "Inputs are drawn deterministically; the clock includes the host-device copies.  Weights default\n"
     "to random.  --report prints one line of JSON (on cuda with the device memory in use, device_bytes).",
     cmd_bench},
    {"compile", C_COMPILE, "MODEL --arch sm_80,sm_90 -o OUT.ditpack [options]",
     "plans, CUBINs and weights in one .ditpack file (needs NVRTC, not a GPU)",
     "One plan per distinct tuning row among the architectures (those whose launch geometry is the\n"
     "same share one), compiled for each architecture it serves.  Kernels go through the kernel cache\n"
     "(" CACHE_DIR_TEXT ").",
     cmd_compile},
    {"cache", C_CACHE, "build MODEL --arch sm_XX,... [options] | ls | verify | clear [--arch sm_XX]",
     "the kernel cache: fill it, list, verify or clear its entries",
     "The cache lives in " CACHE_DIR_TEXT ".\n"
     "build compiles MODEL's plans as compile would, without writing a pack; ls, verify (removes bad\n"
     "entries, exits 1 when there were any) and clear take only --arch.",
     cmd_cache},
    {"help", C_HELP, "[COMMAND | passes]", "this list, a command's usage and options, or the passes",
     NULL, cmd_help},
};
#define N_COMMANDS ((int)(sizeof COMMANDS / sizeof COMMANDS[0]))

/* ---- the options ----------------------------------------------------------------- */

typedef enum {
  OPT_FLAG,   /* no value */
  OPT_STR,    /* any string */
  OPT_CHOICE, /* one of choices, "a|b|c" */
  OPT_DTYPE,  /* a dtype from lo to hi (IrDType), in any of its spellings; stored by its canonical name */
  OPT_INT,    /* a whole number in lo..hi */
  OPT_NUM,    /* a finite number; >= lo when hi != 0 */
  OPT_SET,    /* NAME=VALUE, repeatable */
  OPT_HELP,   /* print the command's help */
} OptKind;

typedef struct {
  const char *name;
  const char *alias;    /* another spelling ("-o"), or NULL */
  unsigned cmds;        /* the commands that take it (C_ bits) */
  OptKind kind;
  size_t at;            /* offsetof(Opts, field) */
  long long lo, hi;
  const char *choices;  /* OPT_CHOICE */
  const char *arg;      /* its value in the help */
  const char *help;     /* one line */
  int alone;            /* the command then needs no MODEL (ir --ops) */
  /* A flag standing for a pass: "pass:option=", the value appended, put
   * into the pipeline right after PASS_FLAG_AFTER (in the order of these
   * rows), so `--flag V` and --passes spelled out build the same. */
  const char *pass;
} OptSpec;

#define PASS_FLAG_AFTER "cse"

#define O(f) offsetof(Opts, f)
static const OptSpec OPTIONS[] = {
    {"--set", NULL, C_MODEL, OPT_SET, 0, 0, 0, NULL, "NAME=VALUE",
     "override a model parameter (repeatable), e.g. --set att=fgq --set num_heads=6", 0, NULL},
    {"--plan", NULL, C_PLAN, OPT_STR, O(plan), 0, 0, NULL, "P.ditpack", "run a compiled pack in place of MODEL", 0, NULL},
    {"--weights", NULL, C_RUN | C_SAMPLE, OPT_STR, O(weights), 0, 0, NULL, "W",
     "safetensors checkpoint (reference or diffusers naming) or random[:SEED]; with --plan: instead of the pack's", 0, NULL},
    {"--weights", NULL, C_BENCH, OPT_STR, O(weights), 0, 0, NULL, "W",
     "safetensors checkpoint or random[:SEED] (default random; with --plan: the pack's)", 0, NULL},
    {"--weights", NULL, C_CHECK, OPT_STR, O(weights), 0, 0, NULL, "W",
     "also bind these weights: a safetensors checkpoint or random[:SEED]", 0, NULL},
    {"--weights", NULL, C_COMPILE, OPT_STR, O(weights), 0, 0, NULL, "W",
     "put these weights in the pack: a safetensors checkpoint or random[:SEED] (default: none)", 0, NULL},
    {"--input", NULL, C_RUN, OPT_STR, O(input), 0, 0, NULL, "F.safetensors",
     "the entry's inputs, tensors named as its parameters (x, t, y for forward; any dtype)", 0, NULL},
    {"--prefix", NULL, C_RUN, OPT_STR, O(prefix), 0, 0, NULL, "P", "read the inputs as P+NAME: P+x, P+t, P+y (e.g. cfg_)", 0, NULL},
    {"--output", "-o", C_RUN, OPT_STR, O(output), 0, 0, NULL, "F.safetensors", "where `out` goes", 0, NULL},
    {"--output", "-o", C_SAMPLE, OPT_STR, O(output), 0, 0, NULL, "F.safetensors|F.png|F.npz",
     "`samples` and `labels` as safetensors, a PNG grid (column j: label j), or with --num-samples an .npz", 0, NULL},
    {"--output", "-o", C_COMPILE, OPT_STR, O(output), 0, 0, NULL, "OUT.ditpack", "the pack to write (required)", 0, NULL},
    {"--cfg-scale", NULL, C_RUN, OPT_NUM, O(cfg_scale), 0, 0, NULL, "S",
     "classifier-free guidance scale: runs forward_with_cfg", 0, NULL},
    {"--cfg-scale", NULL, C_SAMPLE, OPT_NUM, O(cfg_scale), 0, 0, NULL, "S",
     "classifier-free guidance scale (required; 1: no guidance, the plain forward)", 0, NULL},
    {"--cfg-all-channels", NULL, C_SAMPLE, OPT_FLAG, O(cfg_all_channels), 0, 0, NULL, NULL,
     "guide every eps channel instead of the reference's first three", 0, NULL},
    {"--sampler", NULL, C_SAMPLE, OPT_CHOICE, O(sampler), 0, 0, "ddpm|ddim", NULL, "the sampler (required)", 0, NULL},
    {"--steps", NULL, C_SAMPLE, OPT_INT, O(steps), 1, 100000, NULL, "N",
     "sampling steps, respaced over the diffusion steps (required)", 0, NULL},
    {"--diffusion-steps", NULL, C_SAMPLE, OPT_INT, O(diffusion_steps), 2, 100000, NULL, "N",
     "the training schedule's steps (default 1000)", 0, NULL},
    {"--steps", NULL, C_STATS, OPT_INT, O(steps), 1, 100000, NULL, "S",
     "with --cache-interval: the sampling steps MACs per image are counted over", 0, NULL},
    {"--cache-interval", NULL, C_SAMPLE, OPT_INT, O(cache_interval), 1, 100000, NULL, "N",
     "step caching: a full step keeps every block's gated residual deltas, the N-1 steps after it reuse them "
     "(1: every step full)", 0, NULL},
    {"--cache-interval", NULL, C_STATS, OPT_INT, O(cache_interval), 1, 100000, NULL, "N",
     "MACs per image of sampling --steps S with step caching every N steps, beside the uncached run", 0, NULL},
    {"--step-cache", NULL, C_COMPILE, OPT_FLAG, O(step_cache), 0, 0, NULL, NULL,
     "also compile each entry's step-caching pair ENTRY.cache_full, ENTRY.cache_step (sample --plan "
     "--cache-interval)", 0, NULL},
    {"--cache-warmup", NULL, C_SAMPLE | C_STATS, OPT_INT, O(cache_warmup), 0, 100000, NULL, "W",
     "with --cache-interval: the first W steps are all full (default 0; at most --steps)", 0, NULL},
    {"--labels", NULL, C_SAMPLE, OPT_STR, O(labels), 0, 0, NULL, "L",
     "class labels, e.g. 0,1,7 or 0-9 (num_classes itself is the null class)", 0, NULL},
    {"--labels-from", NULL, C_SAMPLE, OPT_STR, O(labels_from), 0, 0, NULL, "FILE:TENSOR",
     "the labels from a 1-D integer tensor, in place of --labels", 0, NULL},
    {"--repeat", NULL, C_SAMPLE, OPT_INT, O(repeat), 1, 1000000, NULL, "K", "sample the labels K times (default 1)", 0, NULL},
    {"--grid-cols", NULL, C_SAMPLE, OPT_INT, O(grid_cols), 1, 100000, NULL, "N",
     "columns of the PNG grid (default: the number of labels given)", 0, NULL},
    {"--seed", NULL, C_SAMPLE, OPT_INT, O(seed), 0, INT64_MAX, NULL, "N", "seed of the drawn noise (default 0)", 0, NULL},
    {"--init-noise", NULL, C_SAMPLE, OPT_STR, O(init_noise), 0, 0, NULL, "FILE:TENSOR",
     "the starting noise [N, C, H, W] instead of drawing it", 0, NULL},
    {"--step-noise", NULL, C_SAMPLE, OPT_STR, O(step_noise), 0, 0, NULL, "FILE:TENSOR",
     "every step's noise [steps, N, C, H, W] instead of drawing it", 0, NULL},
    {"--backend", NULL, C_PLAN, OPT_CHOICE, O(backend), 0, 0, "ref|emu|cuda", NULL,
     "CPU reference executor, the generated kernels on the CPU, or the GPU (default: cuda when a GPU is "
     "present, else ref; emu with --plan)", 0, NULL},
    {"--arch", NULL, C_PLAN, OPT_STR, O(arch), 0, 0, NULL, "sm_XX",
     "emu: run the plan of that architecture's tuning row (cuda runs the GPU's own)", 0, NULL},
    {"--arch", NULL, C_COMPILE, OPT_STR, O(arch), 0, 0, NULL, "sm_XX,...", "the architectures (required)", 0, NULL},
    {"--arch", NULL, C_CACHE, OPT_STR, O(arch), 0, 0, NULL, "sm_XX,...",
     "build: the architectures (required); ls, verify, clear: only that architecture's entries", 0, NULL},
    {"--precision", NULL, C_PLAN, OPT_DTYPE, O(precision), IR_F32, IR_BF16, NULL, NULL,
     "the plan's precision on emu and cuda (default f32; ref computes in f32)", 0, NULL},
    {"--precision", NULL, C_COMPILE | C_CACHE, OPT_DTYPE, O(precision), IR_F32, IR_BF16, NULL, NULL,
     "the plans' precision (default f32)", 0, NULL},
    {"--batch", NULL, C_COMPILE | C_CACHE, OPT_INT, O(batch), 1, 1 << 20, NULL, "N",
     "the batch the plans are built for (default 1)", 0, NULL},
    {"--batch", NULL, C_SAMPLE, OPT_INT, O(batch), 1, 1 << 20, NULL, "B",
     "with --num-samples: images per sampling loop (default 32; a pack's own batch with --plan)", 0, NULL},
    {"--num-samples", NULL, C_SAMPLE, OPT_INT, O(num_samples), 1, 100000000, NULL, "N",
     "write N images as an .npz for the ADM evaluator (arr_0 uint8 [N, H, W, C], arr_1 int64 labels)", 0, NULL},
    {"--vae", NULL, C_SAMPLE, OPT_STR, O(vae), 0, 0, NULL, "CONFIG|F.dit",
     "decode the samples to images with this VAE's decode entry (sd-vae-ft-ema, sd-vae-ft-mse, or a .dit file), "
     "on the same backend", 0, NULL},
    {"--vae-weights", NULL, C_SAMPLE, OPT_STR, O(vae_weights), 0, 0, NULL, "W",
     "with --vae: its AutoencoderKL checkpoint (diffusers naming; the encoder's tensors are ignored)", 0, NULL},
    {"--resume", NULL, C_SAMPLE, OPT_FLAG, O(resume), 0, 0, NULL, NULL,
     "with --num-samples: continue an interrupted run from the batches it finished (X.npz.partial/)", 0, NULL},
    {"--batch", NULL, C_BENCH, OPT_INT, O(batch), 1, 1 << 20, NULL, "N", "images per forward pass (default 1)", 0, NULL},
    {"--batch", NULL, C_STATS, OPT_INT, O(batch), 1, 1 << 20, NULL, "N",
     "the batch MACs and activation bytes are counted at (default 1)", 0, NULL},
    {"--entry", NULL, C_COMPILE | C_CACHE, OPT_STR, O(entry), 0, 0, NULL, "NAME|all",
     "the entry to compile, e.g. forward or decode, or all: every entry of the model (default all)", 0, NULL},
    {"--entry", NULL, C_RUN, OPT_STR, O(entry), 0, 0, NULL, "NAME",
     "the entry to run, its inputs read by name, e.g. decode (default forward; forward_with_cfg with "
     "--cfg-scale)", 0, NULL},
    {"--entry", NULL, C_IR | C_STATS | C_BENCH, OPT_STR, O(entry), 0, 0, NULL, "NAME",
     "the entry to build, e.g. forward_with_cfg (default forward, else the model's first)", 0, NULL},
    {"--weight-dtype", NULL, C_STATS, OPT_DTYPE, O(weight_dtype), IR_F32, IR_I8, NULL, NULL,
     "the dtype weight bytes are counted in (default f32)", 0, NULL},
    {"--json", NULL, C_STATS, OPT_FLAG, O(json), 0, 0, NULL, NULL, "one line of JSON", 0, NULL},
    {"--json", NULL, C_COMPILE, OPT_FLAG, O(json), 0, 0, NULL, NULL,
     "with --report: the report as JSON on stdout (the rest goes to stderr)", 0, NULL},
    {"--report", NULL, C_COMPILE, OPT_FLAG, O(report), 0, 0, NULL, NULL,
     "every plan's steps with the bytes they move, and ptxas' registers and spills per kernel", 0, NULL},
    {"--report", NULL, C_BENCH, OPT_FLAG, O(report), 0, 0, NULL, NULL, "one line of JSON", 0, NULL},
    {"--source", NULL, C_COMPILE, OPT_STR, O(source), 0, 0, NULL, "OUT.cu",
     "also write the generated CUDA C (a banner per kernel names its IR nodes)", 0, NULL},
    {"--iters", NULL, C_BENCH, OPT_INT, O(iters), 1, 100000, NULL, "N", "timed runs (default 20)", 0, NULL},
    {"--profile", NULL, C_BENCH, OPT_FLAG, O(profile), 0, 0, NULL, NULL,
     "then time every step (cuda: events, emu: the host clock), the median over --iters passes, beside "
     "the roofline's prediction for the GPU (compile --report)", 0, NULL},
    {"--gpu", NULL, C_BENCH, OPT_STR, O(gpu), 0, 0, NULL, "ID",
     "with --profile: the row of codegen/gpus.def to predict with (A100, L40S, RTX4090, H100, H200; default: "
     "the GPU's own row, else H100)", 0, NULL},
    {"--warmup", NULL, C_BENCH, OPT_INT, O(warmup), 0, 100000, NULL, "N",
     "untimed runs first (default 3, or 0 when --iters is given)", 0, NULL},
    {"--tol", NULL, C_COMPARE, OPT_NUM, O(tol), 0, 1, NULL, "X",
     "exit 1 when the relative L2 error is above X", 0, NULL},
    {"--passes", NULL, C_MODEL, OPT_STR, O(passes), 0, 0, NULL, "P",
     "the pass pipeline: a,b:key=value,c | default | none (`ditc ir --passes-help`)", 0, NULL},
    {"--quantize", NULL, C_MODEL, OPT_CHOICE, O(quantize), 0, 0, PASS_QUANTIZE_MODES, NULL,
     "quantise the linears (the pass quantize:mode=MODE after " PASS_QUANTIZE_AFTER "): w8 int8 weights, w8a8 also "
     "int8 activations per token (none: no pass)", 0, NULL},
    {"--quantize-scope", NULL, C_MODEL, OPT_CHOICE, O(quantize_scope), 0, 0, PASS_QUANTIZE_SCOPES, NULL,
     "with --quantize: the blocks' attention and MLP linears (default), or every linear", 0, NULL},
    {"--dump-after", NULL, C_MODEL, OPT_STR, O(dump_after), 0, 0, NULL, "PASS|all",
     "print the IR after that pass (every time it runs), or after every pass", 0, NULL},
    {"--verify", NULL, C_MODEL, OPT_FLAG, O(verify), 0, 0, NULL, NULL,
     "verify the IR after every pass (always done; kept for scripts)", 0, NULL},
    {"--prune-blocks", NULL, C_MODEL, OPT_INT, O(prune_blocks), 1, 65536, NULL, "N",
     "drop the N blocks that change the output least on calibration data (pass prune-blocks)", 0,
     "prune-blocks:count="},
    {"--prune-heads", NULL, C_MODEL, OPT_INT, O(prune_heads), 1, 65536, NULL, "K",
     "keep the K best attention heads of every block, remove the others (pass prune-heads)", 0,
     "prune-heads:keep="},
    {"--kv-heads", NULL, C_MODEL, OPT_INT, O(kv_heads), 1, 65536, NULL, "K",
     "grouped-query attention: K shared K/V heads per block, the means of their groups (pass kv-heads)", 0,
     "kv-heads:count="},
    {"--prune-mlp", NULL, C_MODEL, OPT_NUM, O(prune_mlp), 0, 0, NULL, "F",
     "remove the fraction F (in [0, 1)) of every MLP's hidden channels, lowest |fc1 row| |fc2 column| first "
     "(pass prune-mlp)", 0, "prune-mlp:fraction="},
    {"--calibrate", NULL, C_MODEL, OPT_INT, O(calibrate), 1, 100000, NULL, "N",
     "samples the calibration data of criterion=calib, --prune-blocks and quantize fp8 is measured on (default 8; "
     "sample's own sampler and labels, else DDPM 50 steps, guidance 1.5, labels 0..C-1; on the reference "
     "executor, cached next to the kernel cache; needs --weights)", 0, NULL},
    {"--ops", NULL, C_IR, OPT_FLAG, O(ops), 0, 0, NULL, NULL, "list the IR's ops (no MODEL needed)", 1, NULL},
    {"--passes-help", NULL, C_IR, OPT_FLAG, O(passes_help), 0, 0, NULL, NULL,
     "list the passes, their options and the default pipeline (no MODEL needed)", 1, NULL},
    {"--help", "-h", C_ALL, OPT_HELP, 0, 0, 0, NULL, NULL, "print this help", 0, NULL},
};
#undef O
#define N_OPTIONS ((int)(sizeof OPTIONS / sizeof OPTIONS[0]))

/* Dtypes as users write them (TensorRT's fp16, PyTorch's float16 and half). */
static const struct {
  IrDType t;
  const char *spellings;
} DTYPE_SPELLINGS[] = {
    {IR_F32, "f32|fp32|float32|float"},
    {IR_F16, "f16|fp16|float16|half"},
    {IR_BF16, "bf16|bfloat16"},
    {IR_I8, "i8|int8"},
};

/* ---- messages --------------------------------------------------------------------- */

static const Command *current; /* the command being parsed or run, for the usage hint */

static void vmessage(const char *kind, const char *fmt, va_list ap) {
  fprintf(stderr, "ditc: %s: ", kind);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

int cli_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmessage("error", fmt, ap);
  va_end(ap);
  return 1;
}

/* The usage error's second line: what to do.  hint NULL: the running
 * command's help (or the list of commands). */
static int vusage(const char *hint, const char *fmt, va_list ap) {
  vmessage("error", fmt, ap);
  if (hint) fprintf(stderr, "%s\n", hint);
  else if (current) fprintf(stderr, "run `ditc %s --help` for its usage and options\n", current->name);
  else fprintf(stderr, "run `ditc help` for the commands\n");
  return 2;
}

int cli_usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vusage(NULL, fmt, ap);
  va_end(ap);
  return 2;
}

/* A usage error in --passes or --dump-after: the passes are in --passes-help. */
static int pass_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int pass_usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vusage("run `ditc ir --passes-help` for the passes and their options", fmt, ap);
  va_end(ap);
  return 2;
}

void cli_warn(const char *msg) { fprintf(stderr, "ditc: warning: %s\n", msg); }

/* ---- help ---------------------------------------------------------------------------- */

static const Command *find_command(const char *name) {
  for (int i = 0; i < N_COMMANDS; i++)
    if (!strcmp(COMMANDS[i].name, name)) return &COMMANDS[i];
  return NULL;
}

static void print_general_help(FILE *f) {
  fprintf(f, "ditc %s - a compiler for Diffusion Transformers\n\nusage: ditc COMMAND ARGS [options]\n\ncommands:\n",
          DITC_VERSION);
  for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-8s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
  fprintf(f,
          "\n"
          "MODEL is a .dit file, FILE:CONFIG, or a configuration name such as DiT-S/2 (see `ditc models`);\n"
          "--set NAME=VALUE overrides any of its parameters.  Kernel cache: " CACHE_DIR_TEXT ".\n"
          "`ditc help COMMAND` or `ditc COMMAND --help`: a command's usage and every option it takes.\n"
          "`ditc help passes` or `ditc ir --passes-help`: the passes and their options.  `ditc --version`.\n");
}

/* The dtypes lo..hi of s: their names ("f32|f16|bf16") or their other
 * spellings ("fp32, float32, ..."). */
static void dtype_list(const OptSpec *s, int aliases, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = 0;
  for (int t = (int)s->lo; t <= (int)s->hi; t++) {
    const char *sp = DTYPE_SPELLINGS[t].spellings, *rest = sp + strcspn(sp, "|");
    for (const char *w = aliases ? rest : sp; *w && used < n;) {
      w += *w == '|';
      size_t len = strcspn(w, "|");
      used += (size_t)snprintf(buf + used, n - used, "%s%.*s", used ? (aliases ? ", " : "|") : "", (int)len, w);
      w += len;
      if (!aliases) break;
    }
  }
}

/* Print text from column `col` on, wrapped at 100 columns, continuation
 * lines indented to `indent`. */
static void print_wrapped(FILE *f, const char *text, int col, int indent) {
  const int width = 100;
  for (const char *w = text; *w;) {
    size_t len = strcspn(w, " ");
    if (col > indent && col + 1 + (int)len > width) {
      fprintf(f, "\n%*s", indent, "");
      col = indent;
    } else if (w != text) {
      fputc(' ', f);
      col++;
    }
    fprintf(f, "%.*s", (int)len, w);
    col += (int)len;
    w += len;
    while (*w == ' ') w++;
  }
  fputc('\n', f);
}

static void print_option(FILE *f, const OptSpec *s) {
  char left[320], arg[128] = "", help[512];
  if (s->kind == OPT_CHOICE) snprintf(arg, sizeof arg, " %s", s->choices);
  else if (s->kind == OPT_DTYPE) {
    arg[0] = ' ';
    dtype_list(s, 0, arg + 1, sizeof arg - 1);
  } else if (s->arg) {
    snprintf(arg, sizeof arg, " %s", s->arg);
  }
  if (s->alias) snprintf(left, sizeof left, "%s, %s%s", s->alias, s->name, arg);
  else snprintf(left, sizeof left, "%s%s", s->name, arg);
  int used = snprintf(help, sizeof help, "%s", s->help);
  if (s->kind == OPT_INT && s->hi == INT64_MAX)
    snprintf(help + used, sizeof help - (size_t)used, "; %s >= %lld", s->arg, s->lo);
  else if (s->kind == OPT_INT)
    snprintf(help + used, sizeof help - (size_t)used, "; %s in %lld..%lld", s->arg, s->lo, s->hi);
  else if (s->kind == OPT_DTYPE) {
    char al[128];
    dtype_list(s, 1, al, sizeof al);
    snprintf(help + used, sizeof help - (size_t)used, "; also written %s", al);
  }
  const int indent = 34;
  fprintf(f, "  %s", left);
  if ((int)strlen(left) + 2 >= indent - 1) fprintf(f, "\n%*s", indent, "");
  else fprintf(f, "%*s", indent - 2 - (int)strlen(left), "");
  print_wrapped(f, help, indent, indent);
}

static void print_command_help(FILE *f, const Command *c) {
  fprintf(f, "usage: ditc %s%s%s\n\n%c%s.\n", c->name, *c->synopsis ? " " : "", c->synopsis,
          toupper((unsigned char)c->summary[0]), c->summary + 1);
  if (c->details) fprintf(f, "%s\n", c->details);
  if (c->bit & C_MODEL)
    fprintf(f, "MODEL: a .dit file, FILE:CONFIG, or a configuration name such as DiT-S/2 (`ditc models`).\n");
  fprintf(f, "\noptions:\n");
  for (int i = 0; i < N_OPTIONS; i++)
    if (OPTIONS[i].cmds & c->bit) print_option(f, &OPTIONS[i]);
  if (c->bit & C_IR) { /* the passes --passes and --dump-after name */
    fputc('\n', f);
    pass_print_help(f);
  }
}

static int cmd_help(const Opts *o) {
  if (!o->model) {
    print_general_help(stdout);
    return 0;
  }
  if (!strcmp(o->model, "passes")) {
    pass_print_help(stdout);
    return 0;
  }
  const Command *c = find_command(o->model);
  if (!c) {
    current = NULL; /* the hint: the list of commands */
    return cli_usage("no command or topic '%s' (`ditc help passes`: the passes)", o->model);
  }
  print_command_help(stdout, c);
  return 0;
}

/* ---- parsing ------------------------------------------------------------------------- */

static int parse_int(const char *s, long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int parse_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  /* every number option is used as a float: 1e39 would become inf */
  if (errno || end == s || *end || !isfinite(v) || fabs(v) > FLT_MAX) return -1;
  *out = v;
  return 0;
}

/* Is v one of "a|b|c" (case-insensitively with icase)? */
static int one_of(const char *choices, const char *v, int icase) {
  size_t n = strlen(v);
  for (const char *c = choices; *c;) {
    size_t len = strcspn(c, "|");
    if (n && len == n && !(icase ? strncasecmp(c, v, n) : strncmp(c, v, n))) return 1;
    c += len + (c[len] == '|');
  }
  return 0;
}

static int store_option(Opts *o, const OptSpec *spec, const char *v);

/* Store one option's value.  Returns 0, or 2 after a usage message for a bad value. */
static int set_option(Opts *o, const OptSpec *spec, const char *v) {
  int rc = store_option(o, spec, v);
  if (rc || !spec->pass) return rc;
  int k = 0; /* given again: the last one counts */
  while (k < o->n_pass_flags && strcmp(o->pass_flags[k].flag, spec->name)) k++;
  DITC_ASSERT(k < (int)(sizeof o->pass_flags / sizeof o->pass_flags[0]));
  o->pass_flags[k].flag = spec->name;
  o->pass_flags[k].pass = spec->pass;
  o->pass_flags[k].value = v;
  if (k == o->n_pass_flags) o->n_pass_flags++;
  return 0;
}

static int store_option(Opts *o, const OptSpec *spec, const char *v) {
  char *field = (char *)o + spec->at;
  switch (spec->kind) {
  case OPT_FLAG:
    *(long long *)field = 1;
    return 0;
  case OPT_SET: {
    const char *eq = strchr(v, '=');
    if (!eq || eq == v) return cli_usage("--set takes NAME=VALUE, got '%s'", v);
    if (o->n_sets == (int)(sizeof o->sets / sizeof o->sets[0])) return cli_usage("too many --set options");
    o->sets[o->n_sets++] = (FeSetting){strndup(v, (size_t)(eq - v)), eq + 1};
    return 0;
  }
  case OPT_CHOICE:
    if (!one_of(spec->choices, v, 0)) return cli_usage("%s takes %s, got '%s'", spec->name, spec->choices, v);
    *(const char **)field = v;
    return 0;
  case OPT_DTYPE:
    for (int t = (int)spec->lo; t <= (int)spec->hi; t++)
      if (one_of(DTYPE_SPELLINGS[t].spellings, v, 1)) {
        *(const char **)field = ir_dtype_name(DTYPE_SPELLINGS[t].t);
        return 0;
      }
    char names[64], aliases[128];
    dtype_list(spec, 0, names, sizeof names);
    dtype_list(spec, 1, aliases, sizeof aliases);
    return cli_usage("%s takes %s (also written %s), got '%s'", spec->name, names, aliases, v);
  case OPT_STR:
    *(const char **)field = v;
    return 0;
  case OPT_INT:
    if (parse_int(v, spec->lo, spec->hi, (long long *)field))
      return cli_usage("%s takes a whole number in %lld..%lld, got '%s'", spec->name, spec->lo, spec->hi, v);
    return 0;
  case OPT_NUM:
    if (parse_double(v, (double *)field) || (spec->hi && *(double *)field < (double)spec->lo)) {
      if (spec->hi) return cli_usage("%s takes a number >= %lld, got '%s'", spec->name, spec->lo, v);
      return cli_usage("%s takes a finite number of magnitude at most %g, got '%s'", spec->name, (double)FLT_MAX, v);
    }
    if (spec->at == offsetof(Opts, cfg_scale)) o->has_cfg = 1;
    return 0;
  case OPT_HELP:
    break;
  }
  ditc_unreachable();
}

/* The row of option `name` for command c; NULL, with *elsewhere set when
 * another command takes it. */
static const OptSpec *find_option(const char *name, size_t len, const Command *c, int *elsewhere) {
  *elsewhere = 0;
  for (int k = 0; k < N_OPTIONS; k++) {
    const OptSpec *s = &OPTIONS[k];
    int named = (strlen(s->name) == len && !strncmp(s->name, name, len)) ||
                (s->alias && strlen(s->alias) == len && !strncmp(s->alias, name, len));
    if (!named) continue;
    if (s->cmds & c->bit) return s;
    *elsewhere = 1;
  }
  return NULL;
}

/* Is --help or -h among the arguments? */
static int wants_help(int argc, char **argv) {
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
  return 0;
}

/* Parse --passes (or the default) into o->pipeline and check --dump-after
 * against it.  Returns 0 or 2. */
/* --quantize MODE [--quantize-scope S]: the pass quantize:mode=MODE:scope=S
 * after PASS_QUANTIZE_AFTER, so the flag and that --passes agree; fp8 only
 * for --arch sm_89 and later.  Returns 0 or 2. */
static int add_quantize(Opts *o) {
  IrErr err;
  if (o->quantize_scope && !o->quantize) return cli_usage("--quantize-scope goes with --quantize");
  if (o->quantize && strcmp(o->quantize, "none")) {
    if (pass_pipeline_runs(&o->pipeline, "quantize"))
      return cli_usage("--quantize and a quantize pass in --passes: give one of them");
    char spec[128];
    snprintf(spec, sizeof spec, "quantize:mode=%s:scope=%s", o->quantize, o->quantize_scope ? o->quantize_scope : "blocks");
    if (pass_pipeline_insert(&o->pipeline, PASS_QUANTIZE_AFTER, spec, &err)) return pass_usage("--quantize: %s", err.msg);
  }
  int fp8 = 0;
  for (int i = 0; i < o->pipeline.n; i++)
    fp8 |= !strcmp(o->pipeline.steps[i].pass->name, "quantize") && !strcmp(o->pipeline.steps[i].values[0].s, "fp8");
  if (!fp8 || !o->arch) return 0;
  char *list = xstrdup(o->arch);
  int rc = 0;
  for (char *save = NULL, *a = strtok_r(list, ",", &save); a && !rc; a = strtok_r(NULL, ",", &save)) {
    CgArch ca;
    if (!cg_arch_parse(a, &ca, &err) && ca.sm < 89)
      rc = cli_usage("--quantize fp8 needs sm_89 or later (e4m3 tensor cores), --arch names %s", a);
  }
  free(list);
  return rc;
}

static int parse_pipeline(Opts *o) {
  IrErr err;
  if (pass_pipeline_parse(o->passes ? o->passes : "default", &o->pipeline, &err)) return pass_usage("%s", err.msg);
  if (add_quantize(o)) return 2;
  /* the flags standing for passes, in the table's order right after PASS_FLAG_AFTER
   * (each goes right after it, so the last row first) */
  for (int i = N_OPTIONS - 1; i >= 0; i--)
    for (int k = 0; k < o->n_pass_flags; k++) {
      if (!OPTIONS[i].pass || strcmp(o->pass_flags[k].flag, OPTIONS[i].name) ||
          strcmp(o->pass_flags[k].pass, OPTIONS[i].pass))
        continue;
      char spec[256];
      snprintf(spec, sizeof spec, "%s%s", OPTIONS[i].pass, o->pass_flags[k].value);
      if (pass_pipeline_insert(&o->pipeline, PASS_FLAG_AFTER, spec, &err))
        return pass_usage("%s %s: %s", o->pass_flags[k].flag, o->pass_flags[k].value, err.msg);
    }
  const char *d = o->dump_after;
  if (d && strcmp(d, "all")) {
    if (!pass_find(d)) return pass_usage("--dump-after: unknown pass '%s'", d);
    if (!pass_pipeline_runs(&o->pipeline, d))
      return cli_usage("--dump-after %s: the pipeline (--passes %s) does not run '%s'", d,
                       o->passes ? o->passes : "default", d);
  }
  return 0;
}

/* Parse argv (after the command) into o.  Returns 0, or an exit status (2)
 * after printing why. */
static int parse_args(int argc, char **argv, const Command *c, Opts *o) {
  o->steps = -1;
  o->cache_warmup = -1;
  o->diffusion_steps = 1000;
  o->repeat = 1;
  o->tol = -1;
  o->weight_dtype = "f32";
  int first = 2, alone = 0;
  if (c->bit & C_CACHE) {
    if (argc < 3 || !one_of("build|ls|verify|clear", argv[2], 0))
      return cli_usage("cache takes build, ls, verify or clear%s%s%s", argc < 3 ? "" : ", got '",
                       argc < 3 ? "" : argv[2], argc < 3 ? "" : "'");
    o->sub = argv[2];
    first = 3;
  }
  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || !a[1]) {
      if (!o->model)
        o->model = a;
      else if ((c->bit & C_COMPARE) && !o->extra)
        o->extra = a;
      else
        return cli_usage("unexpected argument '%s'", a);
      continue;
    }
    /* --name=value is --name value */
    const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    int elsewhere;
    const OptSpec *spec = find_option(a, len, c, &elsewhere);
    if (!spec && elsewhere) return cli_usage("'%s' does not take %.*s", c->name, (int)len, a);
    if (!spec) return cli_usage("unknown option '%.*s' for '%s'", (int)len, a, c->name);
    const char *v = eq ? eq + 1 : NULL;
    if (spec->kind == OPT_FLAG && v) return cli_usage("%s takes no value", spec->name);
    if (spec->kind != OPT_FLAG && !v) {
      if (i + 1 >= argc) return cli_usage("%s needs a value", spec->name);
      v = argv[++i];
    }
    if (set_option(o, spec, v)) return 2;
    alone |= spec->alone;
  }
  if (c->bit & (C_HELP | C_MODELS | C_COMPARE)) {
    if ((c->bit & C_MODELS) && o->model) return cli_usage("'models' takes no arguments");
    if ((c->bit & C_COMPARE) && !o->extra) return cli_usage("compare needs two FILE:TENSOR operands");
    return 0;
  }
  if (alone) return 0;
  const char *sub = o->sub ? " " : "", *subname = o->sub ? o->sub : "";
  int no_model = o->sub && strcmp(o->sub, "build");
  if (o->plan && o->model) return cli_usage("give MODEL or --plan, not both");
  if (!no_model && !o->model && !o->plan) return cli_usage("'%s%s%s' needs a MODEL", c->name, sub, subname);
  if (no_model && o->model) return cli_usage("'%s%s%s' takes no MODEL", c->name, sub, subname);
  if (no_model && (o->n_sets || o->batch || o->entry || o->passes || o->precision || o->dump_after || o->quantize ||
                   o->quantize_scope))
    return cli_usage("'cache %s' takes only --arch", o->sub);
  return no_model ? 0 : parse_pipeline(o);
}

/* ---- what the handlers share -------------------------------------------------------- */

int cli_settings(const Opts *o, FeSetting *sets) {
  int n = o->n_sets;
  memcpy(sets, o->sets, (size_t)n * sizeof *sets);
  if (o->cfg_all_channels) sets[n++] = (FeSetting){"cfg_channels", "0"};
  return n;
}

/* Does a pass of p decide from data (a TEXT option, its decision, left empty)? */
static int decides_from_data(const PassPipeline *p) {
  for (int i = 0; i < p->n; i++)
    for (int k = 0; k < PASS_MAX_OPTS && p->steps[i].pass->opts[k].name; k++)
      if (p->steps[i].pass->opts[k].type == PASS_OPT_TEXT && !*p->steps[i].values[k].t) return 1;
  return 0;
}

static const float *pass_weight_of(void *ctx, const IrNode *param) { return weights_get(ctx, param); }

/* The flags standing for passes against the model's own numbers: a clear
 * error naming the flag and the model's value.  Returns 0 or 1. */
static int check_pass_flags(const Opts *o, const FeModel *m, const char *name) {
  int64_t heads = fe_param_int(m, "num_heads", 0), depth = fe_param_int(m, "depth", 0);
  if (o->prune_heads && heads > 0 && o->prune_heads > heads)
    return cli_fail("--prune-heads %lld: %s has %lld heads per block", o->prune_heads, name, (long long)heads);
  int64_t kept = o->prune_heads ? o->prune_heads : heads;
  if (o->kv_heads && kept > 0 && (o->kv_heads > kept || kept % o->kv_heads))
    return cli_fail("--kv-heads %lld: %s has %lld %sheads per block, not a multiple of %lld", o->kv_heads, name,
                    (long long)kept, o->prune_heads ? "kept " : "", o->kv_heads);
  if (o->prune_blocks && depth > 0 && o->prune_blocks >= depth)
    return cli_fail("--prune-blocks %lld: %s has %lld blocks (at most %lld can be dropped)", o->prune_blocks, name,
                    (long long)depth, (long long)depth - 1);
  return 0;
}

int cli_build(const Opts *o, const char *entry, FeModel *m) { return cli_build_role(o, entry, NULL, m); }

int cli_build_role(const Opts *o, const char *entry, const char *role, FeModel *m) {
  char base[200];
  size_t len;
  const char *named = entry && !role ? pass_step_cache_role(entry, &len) : NULL;
  if (named && len < sizeof base) { /* --entry ENTRY.cache_full or ENTRY.cache_step: that entry of step caching */
    memcpy(base, entry, len);
    base[len] = '\0';
    entry = base, role = named;
  }
  FeSetting sets[CLI_MAX_SETTINGS];
  int n = cli_settings(o, sets);
  int errors = fe_build(o->model, sets, n, entry, stderr, m);
  if (errors) return cli_fail("%s: %d error%s in the model (above)", o->model, errors, errors == 1 ? "" : "s");
  const char *name = m->config ? m->config : o->model;
  if (check_pass_flags(o, m, name)) {
    fe_model_free(m);
    return 1;
  }
  PassOptions po = {.verify = 1, .dump_after = o->dump_after, .dump = stdout};
  IrErr err;
  /* passes that decide from the weights read them as the graph binds them now */
  Weights w = {0};
  const char *spec = o->weights ? o->weights : !strcmp(o->cmd, "bench") ? "random" : NULL;
  static int warned; /* once, not per entry */
  if (!spec && decides_from_data(&o->pipeline) && !strcmp(o->cmd, "compile") && !warned++)
    cli_warn("no --weights: the passes that remove work keep heads, channels and blocks by position, not by "
             "their scores (the pack records that choice)");
  if (spec && decides_from_data(&o->pipeline)) {
    if (weights_open(m->graph, spec, &w, &err)) {
      fe_model_free(m);
      return cli_fail("%s", err.msg);
    }
    po.weight = pass_weight_of;
    po.weight_ctx = &w;
  }
  if (cli_calibration(o, m, spec, &po.calib)) {
    weights_free(&w);
    fe_model_free(m);
    return 1;
  }
  m->passes = arena_alloc(&m->arena, sizeof *m->passes);
  po.resolved = m->passes;
  PassPipeline *pl = xmalloc(sizeof *pl);
  *pl = o->pipeline;
  int rc = pass_pipeline_add_step_cache(pl, role, &err) || pass_pipeline_run(m->graph, pl, &po, &err);
  free(pl);
  weights_free(&w);
  if (rc) {
    fe_model_free(m);
    if (role && strcmp(role, "none") && o->cache_interval >= 1)
      return cli_fail("--cache-interval %lld: %s", o->cache_interval, err.msg);
    if (role && strcmp(role, "none")) return cli_fail("--step-cache: %s", err.msg);
    return cli_fail("%s", err.msg);
  }
  return 0;
}

IrDType cli_precision(const Opts *o) {
  IrDType t = IR_F32;
  if (o->precision && ir_dtype_parse(o->precision, &t)) ditc_unreachable(); /* set_option stored a canonical name */
  return t;
}

/* ---- main ------------------------------------------------------------------------------ */

/* OpenMP worker threads that busy-wait between the executor's many short
 * parallel loops collapse when the cores are shared (measured: DiT-S/2 2.3 s
 * instead of 0.17 s under a load of 5).  libgomp reads OMP_WAIT_POLICY before
 * main runs, so when the user has not chosen one, choose passive and start
 * again once. */
static void prefer_passive_openmp(char **argv) {
  if (getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv); /* only returns on failure: carry on as we are */
}

int main(int argc, char **argv) {
  fio_install(); /* temporaries go on SIGINT/SIGTERM/SIGHUP and at exit */
  prefer_passive_openmp(argv);
  if (argc < 2) return cli_usage("no command given");
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    print_general_help(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("ditc %s\n", DITC_VERSION);
    return 0;
  }
  const Command *c = find_command(argv[1]);
  if (!c) return cli_usage("unknown command '%s'", argv[1]);
  current = c;
  if (wants_help(argc, argv)) {
    print_command_help(stdout, c);
    return 0;
  }
  Opts *o = xcalloc(1, sizeof *o);
  o->cmd = c->name;
  int rc = parse_args(argc, argv, c, o);
  if (!rc) rc = c->handler(o);
  for (int i = 0; i < o->n_sets; i++) free((char *)o->sets[i].name);
  free(o);
  return rc;
}
