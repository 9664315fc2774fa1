#!/usr/bin/env bash
# Honest verdicts: a test that cannot run here says so.  With NVRTC hidden (DITC_NVRTC pointing at
# nothing) the NVRTC-dependent tests exit 77, which ctest reports as skipped (SKIP_RETURN_CODE in
# tests/CMakeLists.txt), and so do the tests that need ../shared when it is missing; tests/run.sh
# turns any skip into a failure under CI (DITC_FAIL_ON_SKIP=1).
set -uo pipefail
: "${DITC_BIN:?DITC_BIN must name the build tree}" "${DITC_SRC:?}"
fail=0
expect_skip() { # WHAT COMMAND...: the command must exit 77
  local what=$1
  shift
  "$@" >/dev/null 2>&1
  local rc=$?
  if [ "$rc" -eq 77 ]; then echo "ok   $what: skipped (77)"; else echo "FAIL $what: exit $rc, expected 77 (skipped)"; fail=1; fi
}
export DITC_CACHE_DIR
DITC_CACHE_DIR=$(mktemp -d)
trap 'rm -rf "$DITC_CACHE_DIR"' EXIT
expect_skip "test_nvrtc without NVRTC" env DITC_NVRTC=/nonexistent "$DITC_BIN/tests/test_nvrtc"
expect_skip "test_sampler_kernel without NVRTC" env DITC_NVRTC=/nonexistent "$DITC_BIN/tests/test_sampler_kernel"
expect_skip "cli/compile.sh without NVRTC" env DITC_NVRTC=/nonexistent bash "$DITC_SRC/tests/cli/compile.sh"
expect_skip "cli/passes.sh without NVRTC" env DITC_NVRTC=/nonexistent bash "$DITC_SRC/tests/cli/passes.sh"
expect_skip "cli/pack_code.sh without NVRTC" env DITC_NVRTC=/nonexistent bash "$DITC_SRC/tests/cli/pack_code.sh"
expect_skip "cli/cache_entries.sh without NVRTC" env DITC_NVRTC=/nonexistent bash "$DITC_SRC/tests/cli/cache_entries.sh"
expect_skip "cli/nonfinite_cuda.sh without NVRTC" env DITC_NVRTC=/nonexistent bash "$DITC_SRC/tests/cli/nonfinite_cuda.sh"
expect_skip "cli/quantize_compile.sh without NVRTC" env DITC_NVRTC=/nonexistent bash "$DITC_SRC/tests/cli/quantize_compile.sh"
expect_skip "test_cuda_sim without NVRTC" env DITC_NVRTC=/nonexistent "$DITC_BIN/tests/test_cuda_sim"
expect_skip "test_attention_mma without NVRTC (its NVRTC test)" env DITC_NVRTC=/nonexistent "$DITC_BIN/tests/test_attention_mma"
expect_skip "cli/kernels_per_shape.sh without NVRTC" env DITC_NVRTC=/nonexistent bash "$DITC_SRC/tests/cli/kernels_per_shape.sh"
expect_skip "reference/cuda_sim_paper_att_fgq.sh without NVRTC" env DITC_NVRTC=/nonexistent bash "$DITC_SRC/tests/reference/cuda_sim_paper_att_fgq.sh"
expect_skip "reference/cuda_sim_pass_cases.sh without NVRTC" env DITC_NVRTC=/nonexistent bash "$DITC_SRC/tests/reference/cuda_sim_pass_cases.sh"
expect_skip "reference/dit_tiny_p2.sh without ../shared" env DITC_SHARED=/nonexistent bash "$DITC_SRC/tests/reference/dit_tiny_p2.sh"
expect_skip "test_safetensors without ../shared" env DITC_SHARED=/nonexistent "$DITC_BIN/tests/test_safetensors"
# and a skip fails the run under CI: run_ctest of tests/run.sh on a test that skips
out=$(cd "$DITC_BIN" && DITC_FAIL_ON_SKIP=1 DITC_NVRTC=/nonexistent bash -c "source <(sed -n '/^run_ctest()/,/^}/p' '$DITC_SRC/tests/run.sh'); run_ctest --test-dir . -R '^unit/test_nvrtc\$'" 2>&1)
rc=$?
if [ "$rc" -ne 0 ] && grep -q "tests were skipped" <<<"$out"; then echo "ok   a skip fails tests/run.sh under DITC_FAIL_ON_SKIP=1"
else echo "FAIL tests/run.sh passed a skipped test under DITC_FAIL_ON_SKIP=1 (exit $rc)"; fail=1; fi
exit $fail
