#!/usr/bin/env bash
# `mpirun -n 2 ditc sample --num-samples N --output X.npz` on the CPU: sample g on rank g mod 2, rank 0 gathers,
# and the file is byte for byte the one a single process writes; a rank that fails makes both exit non-zero with
# a message and leaves no output.  Skipped (77) only when ditc was built without MPI.
source "$(dirname "$0")/common.bash"
syms=$(nm -D "$DITC" 2>/dev/null || true)  # not piped into grep -q: pipefail would see nm's SIGPIPE
grep -q ' U MPI_Init$' <<<"$syms" || { echo "SKIPPED: ditc was built without MPI"; exit 77; }
command -v mpirun >/dev/null || { echo "FAIL: ditc is built with MPI but there is no mpirun"; exit 1; }
# a container without a network, possibly as root: shared memory between ranks, no ssh launcher
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_plm=isolated \
  OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_hwloc_base_binding_policy=none
# ref's threaded reductions depend on the thread count: the same one in every process
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# OpenMPI does not free what MPI_Init allocates (in its dlopened components, which LeakSanitizer cannot
# name for a suppression): the ranks run without the leak check, the single-process runs keep it
MPI_ASAN=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
M=models/digits
A=(DiT-digits --weights "$M/dit-digits.safetensors" --sampler ddpm --steps 3 --cfg-scale 1.5 --backend ref --seed 3)
"$DITC" sample "${A[@]}" --num-samples 7 --batch 2 --output "$T/one.npz" 2>"$T/log" ||
  { echo "FAIL: one process"; cat "$T/log"; exit 1; }
ASAN_OPTIONS=$MPI_ASAN timeout 300 mpirun -n 2 --oversubscribe "$DITC" sample "${A[@]}" --num-samples 7 --batch 2 --output "$T/two.npz" 2>"$T/log" ||
  { echo "FAIL: mpirun -n 2"; cat "$T/log"; exit 1; }
cmp "$T/one.npz" "$T/two.npz" || { echo "FAIL: 2 processes wrote another file than 1"; fail=1; }
grep -q "rank 1 of 2: 3 images" "$T/log" || { echo "FAIL: no per-rank throughput"; cat "$T/log"; fail=1; }
grep -q "2 processes" "$T/log" || { echo "FAIL: no overall throughput"; cat "$T/log"; fail=1; }
# more ranks than samples: the idle ranks are fine
ASAN_OPTIONS=$MPI_ASAN timeout 300 mpirun -n 3 --oversubscribe "$DITC" sample "${A[@]}" --num-samples 2 --output "$T/idle.npz" 2>"$T/log" ||
  { echo "FAIL: 3 ranks, 2 samples"; cat "$T/log"; fail=1; }
"$DITC" sample "${A[@]}" --num-samples 2 --output "$T/idle1.npz" 2>"$T/log" ||
  { echo "FAIL: one process, 2 samples"; cat "$T/log"; exit 1; }
cmp "$T/idle.npz" "$T/idle1.npz" || { echo "FAIL: 3 ranks for 2 samples wrote another file"; fail=1; }
# a failing rank: every rank exits non-zero, each with a message, and no file remains
for r in 0 1; do
  if DITC_TEST_FAIL_RANK=$r ASAN_OPTIONS=$MPI_ASAN timeout 300 mpirun -n 2 --oversubscribe "$DITC" sample "${A[@]}" --num-samples 7 --batch 2 \
    --output "$T/bad.npz" 2>"$T/log"; then echo "FAIL: rank $r failed and mpirun exited 0"; fail=1; fi
  # (the ranks share stderr: their lines may interleave, so count the messages, not the lines)
  [ "$(grep -o 'ditc: error: ' "$T/log" | wc -l)" -ge 2 ] || { echo "FAIL: rank $r failed: not every rank said why"; cat "$T/log"; fail=1; }
  [ ! -e "$T/bad.npz" ] || { echo "FAIL: rank $r failed and bad.npz was written"; fail=1; }
  if compgen -G "$T/*.tmp.*" >/dev/null; then echo "FAIL: a temporary remains"; fail=1; fi
done
exit $fail
