/*
 * cli_report.c - compile's report: per plan the launches per forward and per
 * block, the activation bytes every step reads and writes, the planned and
 * unplanned peak activation memory, and per architecture ptxas' registers,
 * spills, stack and shared memory; and the roofline (codegen/roofline.h): per
 * step its FLOPs, execution unit and predicted time on each GPU of the peak
 * table, and per plan the predicted time per forward and per image.  The
 * report is built as JSON (--report --json prints it as is); the text form is
 * printed from the same JSON.
 */
#include <string.h>

#include "codegen/roofline.h"
#include "frontend/cli.h"

/* "blocks.<i>" or "blocks.<i>.*" -> i, else -1. */
static int block_of(const char *label) {
  if (!label || strncmp(label, "blocks.", 7)) return -1;
  const char *p = label + 7;
  if (*p < '0' || *p > '9') return -1;
  int i = 0;
  while (*p >= '0' && *p <= '9' && i < 1000000) i = i * 10 + (*p++ - '0');
  return *p == '.' || !*p ? i : -1;
}

typedef struct {
  int steps, kernel_steps, gemm_steps, per_block;
  int64_t act_moved;
  double flops;
  json_t *list; /* per step: what it is and the bytes it moves */
} PlanStats;

/* Counts per forward pass.  Launches per block: steps whose IR node carries a
 * "blocks.<i>" label, the most over i.  Activation bytes moved: the sum over
 * the steps of the arena bytes each reads and writes (CgStep.act_read ...,
 * every distinct element once per step). */
static PlanStats plan_stats(const CgPlan *p, IrGraph *g) {
  PlanStats s = {.steps = p->n_steps, .list = json_array()};
  int max_block = -1;
  for (int i = 0; i < p->n_steps; i++) {
    const CgStep *st = &p->steps[i];
    const IrNode *n = st->node >= 0 && st->node < g->n_nodes ? g->nodes[st->node] : NULL;
    int b = n ? block_of(n->name) : -1;
    if (b > max_block) max_block = b;
    if (st->kind == CG_STEP_GEMM)
      s.gemm_steps++;
    else
      s.kernel_steps++;
    s.act_moved += st->act_read + st->act_written;
    s.flops += st->flops;
    json_t *pred = json_object();
    int ng;
    const CgGpu *gpus = cg_gpus(&ng);
    for (int g = 0; g < ng; g++) {
      CgPrediction r = cg_predict_step(st, &gpus[g]);
      json_object_set_new(pred, gpus[g].id, json_pack("{s:f, s:s}", "us", r.seconds * 1e6, "bound",
                                                       r.memory_bound ? "memory" : "compute"));
    }
    json_array_append_new(s.list, json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:s, s:o}", "step",
                                            st->kind == CG_STEP_GEMM ? "gemm" : p->kernels[st->kernel].name, "node",
                                            st->what ? st->what : "", "act_read", (json_int_t)st->act_read,
                                            "act_written", (json_int_t)st->act_written, "weight_read",
                                            (json_int_t)st->weight_read, "flops", st->flops, "unit",
                                            cg_unit_name(st->unit), "predicted", pred));
  }
  int *count = xcalloc((size_t)max_block + 2, sizeof *count);
  for (int i = 0; i < p->n_steps; i++) {
    const CgStep *st = &p->steps[i];
    const IrNode *n = st->node >= 0 && st->node < g->n_nodes ? g->nodes[st->node] : NULL;
    int b = n ? block_of(n->name) : -1;
    if (b >= 0 && ++count[b] > s.per_block) s.per_block = count[b];
  }
  free(count);
  return s;
}

/* ptxas' report of one kernel as JSON / text (stats NULL: not available). */
static json_t *kernel_json(const CgKernel *k, const CgKernelStats *ks) {
  if (!ks) return json_pack("{s:s, s:n}", "name", k->name, "registers");
  return json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "name", k->name, "registers", ks->registers, "spill_stores",
                   ks->spill_stores, "spill_loads", ks->spill_loads, "stack_frame", ks->stack_frame, "smem", ks->smem);
}

static const CgKernelStats *find_stats(const CgKernelStats *ks, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (ks[i].name && !strcmp(ks[i].name, name)) return &ks[i];
  return NULL;
}

/* Plan p's statistics as a new entry of rep's "plans" (its "archs" filled later). */
json_t *cli_plan_report(json_t *rep, const CgPlan *p, IrGraph *g, const char *entry) {
  PlanStats st = plan_stats(p, g);
  json_t *pj = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:o}", "entry", entry,
                         "tuning", p->tuning, "kernels_per_forward", st.steps, "kernel_launches", st.kernel_steps,
                         "gemm_steps", st.gemm_steps, "kernels", p->n_kernels, "kernels_per_block", st.per_block,
                         "activation_bytes_moved", (json_int_t)st.act_moved, "peak_activation_bytes",
                         (json_int_t)p->arena_bytes, "unplanned_activation_bytes",
                         (json_int_t)p->arena_unplanned_bytes, "arena_bytes", (json_int_t)p->arena_bytes,
                         "weights_bytes", (json_int_t)p->weights_bytes, "steps", st.list);
  json_object_set_new(pj, "flops_per_forward", json_real(st.flops));
  json_t *pred = json_array();
  int ng;
  const CgGpu *gpus = cg_gpus(&ng);
  for (int g = 0; g < ng; g++) {
    double t = cg_predict_plan(p, &gpus[g]), mem = 0;
    for (int i = 0; i < p->n_steps; i++) {
      CgPrediction r = cg_predict_step(&p->steps[i], &gpus[g]);
      if (r.memory_bound) mem += r.seconds;
    }
    json_array_append_new(pred, json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:f}", "gpu", gpus[g].id, "name",
                                          gpus[g].name, "arch", gpus[g].arch, "forward_ms", t * 1e3,
                                          "per_image_ms", t * 1e3 / (double)p->batch, "images_per_s",
                                          t > 0 ? (double)p->batch / t : 0.0, "memory_bound_fraction",
                                          t > 0 ? mem / t : 0.0));
  }
  json_object_set_new(pj, "predicted", pred);
  json_object_set_new(pj, "archs", json_object());
  json_array_append_new(json_object_get(rep, "plans"), pj);
  return pj;
}

/* Arch's CUBIN of plan p in the report (ptxas' numbers when log is there). */
void cli_arch_report(json_t *pj, const CgPlan *p, const char *arch, size_t size, const char *log) {
  CgKernelStats *ks = NULL;
  int nk = log ? cg_ptxas_parse(log, &ks) : 0;
  json_t *kj = json_array();
  int max_regs = 0, spills = 0;
  for (int k = 0; k < p->n_kernels; k++) {
    const CgKernelStats *s = log ? find_stats(ks, nk, p->kernels[k].name) : NULL;
    if (s && s->registers > max_regs) max_regs = s->registers;
    if (s && (s->spill_stores > 0 || s->spill_loads > 0)) spills++;
    json_array_append_new(kj, kernel_json(&p->kernels[k], s));
  }
  json_object_set_new(json_object_get(pj, "archs"), arch,
                      json_pack("{s:s, s:b, s:I, s:i, s:i, s:o}", "tuning", cg_tuning_name(arch), "ptxas_report",
                                log != NULL, "cubin_bytes", (json_int_t)size, "max_registers", max_regs,
                                "kernels_spilling", spills, "kernels", kj));
  cg_kernel_stats_free(ks, nk);
}



void cli_print_report(const json_t *rep, FILE *f) {
  size_t i;
  json_t *pj;
  json_array_foreach(json_object_get(rep, "plans"), i, pj) {
    const char *tuning = json_string_value(json_object_get(pj, "tuning"));
    fprintf(f, "plan %s (%s, batch %lld, tuning row %s)\n", json_string_value(json_object_get(pj, "entry")),
            json_string_value(json_object_get(rep, "precision")),
            (long long)json_integer_value(json_object_get(rep, "batch")), tuning);
    fprintf(f, "  launches per forward   %lld (%lld kernels, %lld GEMMs; %lld distinct kernels)\n",
            (long long)json_integer_value(json_object_get(pj, "kernels_per_forward")),
            (long long)json_integer_value(json_object_get(pj, "kernel_launches")),
            (long long)json_integer_value(json_object_get(pj, "gemm_steps")),
            (long long)json_integer_value(json_object_get(pj, "kernels")));
    fprintf(f, "  launches per block     %lld\n", (long long)json_integer_value(json_object_get(pj, "kernels_per_block")));
    json_int_t peak = json_integer_value(json_object_get(pj, "peak_activation_bytes"));
    json_int_t unplanned = json_integer_value(json_object_get(pj, "unplanned_activation_bytes"));
    fprintf(f, "  peak activation memory %lld bytes (%.2f MiB; %.2f MiB without buffer reuse)\n", (long long)peak,
            (double)peak / 1048576.0, (double)unplanned / 1048576.0);
    json_int_t moved = json_integer_value(json_object_get(pj, "activation_bytes_moved"));
    fprintf(f, "  activation bytes moved %lld (%.2f MiB)\n", (long long)moved, (double)moved / 1048576.0);
    fprintf(f, "  weights                %lld bytes (%.2f MiB)\n",
            (long long)json_integer_value(json_object_get(pj, "weights_bytes")),
            (double)json_integer_value(json_object_get(pj, "weights_bytes")) / 1048576.0);
    fprintf(f, "  GFLOP per forward      %.4f (2 x MACs of the contractions)\n",
            json_number_value(json_object_get(pj, "flops_per_forward")) / 1e9);
    fprintf(f, "  predicted (roofline: max(FLOPs / peak, bytes / bandwidth) per step, a lower bound; "
               "peaks in codegen/gpus.def)\n");
    size_t gi;
    json_t *gj;
    json_array_foreach(json_object_get(pj, "predicted"), gi, gj)
      fprintf(f, "    %-16s %-6s %10.4f ms per forward %10.4f ms per image %9.1f images/s  %3.0f %% memory-bound\n",
              json_string_value(json_object_get(gj, "name")), json_string_value(json_object_get(gj, "arch")),
              json_number_value(json_object_get(gj, "forward_ms")),
              json_number_value(json_object_get(gj, "per_image_ms")),
              json_number_value(json_object_get(gj, "images_per_s")),
              100 * json_number_value(json_object_get(gj, "memory_bound_fraction")));
    fprintf(f, "  %5s  %-22s %12s %12s %12s %10s %-17s", "step", "kernel", "act read", "act written", "weights read",
            "MFLOP", "unit");
    json_array_foreach(json_object_get(pj, "predicted"), gi, gj)
      fprintf(f, " %8s", json_string_value(json_object_get(gj, "gpu")));
    fprintf(f, "  IR node (predicted times in us)\n");
    size_t si;
    json_t *sj;
    json_array_foreach(json_object_get(pj, "steps"), si, sj) {
      fprintf(f, "  %5zu  %-22s %12lld %12lld %12lld %10.3f %-17s", si, json_string_value(json_object_get(sj, "step")),
              (long long)json_integer_value(json_object_get(sj, "act_read")),
              (long long)json_integer_value(json_object_get(sj, "act_written")),
              (long long)json_integer_value(json_object_get(sj, "weight_read")),
              json_number_value(json_object_get(sj, "flops")) / 1e6,
              json_string_value(json_object_get(sj, "unit")));
      json_array_foreach(json_object_get(pj, "predicted"), gi, gj) {
        json_t *sp = json_object_get(json_object_get(sj, "predicted"), json_string_value(json_object_get(gj, "gpu")));
        fprintf(f, " %8.2f", json_number_value(json_object_get(sp, "us")));
      }
      fprintf(f, "  %s\n", json_string_value(json_object_get(sj, "node")));
    }
    const char *arch;
    json_t *aj;
    json_object_foreach(json_object_get(pj, "archs"), arch, aj) {
      const char *row = json_string_value(json_object_get(aj, "tuning"));
      fprintf(f, "  %s: tuning row %s%s%s, CUBIN %lld bytes%s\n", arch, row,
              strcmp(row, tuning) ? ", the same geometry as " : "", strcmp(row, tuning) ? tuning : "",
              (long long)json_integer_value(json_object_get(aj, "cubin_bytes")),
              json_is_true(json_object_get(aj, "ptxas_report")) ? "" : " (ptxas report not in the cache)");
      fprintf(f, "    %-40s %5s %13s %6s %6s\n", "kernel", "regs", "spill st/ld", "stack", "smem");
      size_t k;
      json_t *kj;
      json_array_foreach(json_object_get(aj, "kernels"), k, kj) {
        json_t *r = json_object_get(kj, "registers");
        if (json_is_null(r)) {
          fprintf(f, "    %-40s %5s\n", json_string_value(json_object_get(kj, "name")), "-");
          continue;
        }
        char sp[32];
        snprintf(sp, sizeof sp, "%lld/%lld", (long long)json_integer_value(json_object_get(kj, "spill_stores")),
                 (long long)json_integer_value(json_object_get(kj, "spill_loads")));
        fprintf(f, "    %-40s %5lld %13s %6lld %6lld\n", json_string_value(json_object_get(kj, "name")),
                (long long)json_integer_value(r), sp,
                (long long)json_integer_value(json_object_get(kj, "stack_frame")),
                (long long)json_integer_value(json_object_get(kj, "smem")));
      }
    }
  }
}
