#!/usr/bin/env bash
# `ditc sample --num-samples N --resume`: a run stopped after K batches (DITC_TEST_STOP_AFTER=K) keeps them in
# X.npz.partial/, --resume samples only the rest, and the .npz is byte for byte the uninterrupted run's; the
# folder is gone after success.  A run without --resume refuses the folder; a resume with other settings is
# refused naming the setting; --resume without --num-samples is a usage error.  With mpirun -n 2 (when built
# with MPI) each rank resumes its own batches.
source "$(dirname "$0")/common.bash"
M=models/digits
A=(DiT-digits --weights "$M/dit-digits.safetensors" --sampler ddpm --steps 3 --cfg-scale 1.5 --backend ref --seed 3
   --num-samples 7 --batch 2)
"$DITC" sample "${A[@]}" --output "$T/full.npz" 2>/dev/null || { echo "FAIL: the uninterrupted run"; exit 1; }
if DITC_TEST_STOP_AFTER=2 "$DITC" sample "${A[@]}" --output "$T/r.npz" 2>"$T/err"; then echo "FAIL: not stopped"; fail=1; fi
[ ! -e "$T/r.npz" ] || { echo "FAIL: a stopped run wrote its .npz"; fail=1; }
[ "$(find "$T/r.npz.partial" -name 'r0-b*' | wc -l)" = 2 ] || { echo "FAIL: not 2 finished batches"; ls -la "$T/r.npz.partial"; fail=1; }
# without --resume: refused, the finished batches kept
if "$DITC" sample "${A[@]}" --output "$T/r.npz" 2>"$T/err"; then echo "FAIL: the partial folder was ignored"; fail=1; fi
grep -q "give --resume to continue it" "$T/err" || { echo "FAIL: message"; cat "$T/err"; fail=1; }
# other settings: refused, naming what differs
if "$DITC" sample "${A[@]}" --seed 4 --resume --output "$T/r.npz" 2>"$T/err"; then echo "FAIL: other seed resumed"; fail=1; fi
grep -q "other settings (it has 'seed 3', this run 'seed 4')" "$T/err" || { echo "FAIL: message"; cat "$T/err"; fail=1; }
# stop once more after one more batch, then finish
DITC_TEST_STOP_AFTER=1 "$DITC" sample "${A[@]}" --resume --output "$T/r.npz" 2>/dev/null && { echo "FAIL: not stopped"; fail=1; }
[ "$(find "$T/r.npz.partial" -name 'r0-b*' | wc -l)" = 3 ] || { echo "FAIL: not 3 finished batches"; fail=1; }
DITC_TEST_STOP_AFTER=1 "$DITC" sample "${A[@]}" --resume --output "$T/r.npz" 2>"$T/log" ||
  { echo "FAIL: the resume (one batch left) failed"; cat "$T/log"; fail=1; }
grep -q "resuming from" "$T/log" || { echo "FAIL: no resume note"; cat "$T/log"; fail=1; }
cmp "$T/full.npz" "$T/r.npz" || { echo "FAIL: the resumed file differs from the uninterrupted one"; fail=1; }
[ ! -e "$T/r.npz.partial" ] || { echo "FAIL: the partial folder remains after success"; fail=1; }
# --resume with nothing to resume starts afresh
"$DITC" sample "${A[@]}" --resume --output "$T/n.npz" 2>/dev/null && cmp "$T/full.npz" "$T/n.npz" ||
  { echo "FAIL: --resume without a partial folder"; fail=1; }
# usage
if "$DITC" sample "${A[@]:0:11}" --labels 1 --resume --output "$T/u.safetensors" 2>"$T/err"; then echo "FAIL: --resume alone"; fail=1; fi
grep -q "resume continues a --num-samples run" "$T/err" || { echo "FAIL: message"; cat "$T/err"; fail=1; }
# MPI: each rank resumes its own batches
syms=$(nm -D "$DITC" 2>/dev/null || true)
if grep -q ' U MPI_Init$' <<<"$syms" && command -v mpirun >/dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_plm=isolated \
    OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_hwloc_base_binding_policy=none
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
  MPI=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout 300 mpirun -n 2 --oversubscribe "$DITC")
  DITC_TEST_STOP_AFTER=1 "${MPI[@]}" sample "${A[@]}" --output "$T/m.npz" 2>/dev/null && { echo "FAIL: mpi not stopped"; fail=1; }
  [ "$(find "$T/m.npz.partial" -name 'r[01]-b0' | wc -l)" = 2 ] || { echo "FAIL: each rank's first batch"; ls "$T/m.npz.partial"; fail=1; }
  "${MPI[@]}" sample "${A[@]}" --resume --output "$T/m.npz" 2>"$T/log" || { echo "FAIL: mpi resume"; cat "$T/log"; fail=1; }
  cmp "$T/full.npz" "$T/m.npz" || { echo "FAIL: the resumed 2-process file differs"; fail=1; }
  [ ! -e "$T/m.npz.partial" ] || { echo "FAIL: the partial folder remains after the mpi run"; fail=1; }
else
  echo "note: built without MPI (or no mpirun): the 2-process resume is not run"
fi
exit $fail
