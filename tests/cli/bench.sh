#!/usr/bin/env bash
# `ditc bench` runs on the reference executor and the emulated device and reports one JSON line;
# --profile times every step of the plan (emu: host clock; cuda under the simulated driver: events)
# beside the roofline's prediction, and refuses what it cannot do.
set -euo pipefail
: "${DITC:?}"
export DITC_CACHE_DIR=$(mktemp -d)
trap 'rm -rf "$DITC_CACHE_DIR"' EXIT
cd "${DITC_SRC:?}"
TINY=(--set input_size=8 --set hidden_size=32 --set depth=1 --set num_heads=2 --set num_classes=10)
for be in ref emu; do
  line=$("$DITC" bench models/dit.dit "${TINY[@]}" --backend "$be" --batch 2 --iters 3 --report)
  echo "$line"
  jq -e --arg be "$be" '.backend == $be and .batch == 2 and .iters == 3 and .median_ms > 0 and .images_per_s > 0' <<<"$line" >/dev/null
done
line=$("$DITC" bench models/dit.dit "${TINY[@]}" --backend emu --precision bf16 --entry forward_with_cfg --iters 2 --report)
jq -e '.precision == "bf16" and .entry == "forward_with_cfg" and .steps > 0 and .arena_bytes > 0' <<<"$line" >/dev/null
if msg=$("$DITC" bench models/dit.dit "${TINY[@]}" --iters 0 2>&1); then echo "FAIL: --iters 0 accepted"; exit 1; fi
grep -q "iters takes" <<<"$msg" || { echo "FAIL: unexpected message: $msg"; exit 1; }

# --profile: one entry per plan step, measured and predicted, totals their sums
line=$("$DITC" bench models/dit.dit "${TINY[@]}" --backend emu --precision bf16 --iters 3 --profile --gpu A100 --report)
jq -e '.profile as $p | ($p.steps | length) == .steps and $p.predicted_for == "A100" and $p.passes == 3
       and ([$p.steps[].measured_ms] | all(. >= 0)) and $p.measured_total_ms > 0 and $p.predicted_total_ms > 0
       and (([$p.steps[].predicted_ms] | add) - $p.predicted_total_ms | fabs) < 1e-9
       and ([$p.steps[] | select(.step == "gemm") | .unit] | unique) == ["tensor core bf16"]' <<<"$line" >/dev/null \
  || { echo "FAIL: profile: $line"; exit 1; }
text=$("$DITC" bench models/dit.dit "${TINY[@]}" --backend emu --iters 1 --profile)
grep -q "not this device (--gpu picks the row)" <<<"$text" || { echo "FAIL: profile text: $text"; exit 1; }
grep -qE '^  total ' <<<"$text" || { echo "FAIL: profile total: $text"; exit 1; }
if line=$(DITC_CUDA_SIM=1 "$DITC" bench models/dit.dit "${TINY[@]}" --backend cuda --iters 2 --profile --report 2>"$DITC_CACHE_DIR/err"); then
  jq -e '.profile.device | test("simulated")' <<<"$line" >/dev/null || { echo "FAIL: cuda profile: $line"; exit 1; }
  jq -e '.profile.predicted_for == "H100" and .profile.measured_total_ms > 0' <<<"$line" >/dev/null \
    || { echo "FAIL: cuda profile: $line"; exit 1; }
  echo "ok   --profile through the cuda backend under the simulated driver (events per step)"
elif ! grep -q "NVRTC" "$DITC_CACHE_DIR/err"; then
  cat "$DITC_CACHE_DIR/err"; echo "FAIL: cuda --profile"; exit 1
else
  echo "note: no NVRTC, the cuda --profile check did not run"
fi
for bad in "--backend ref --profile|ref runs the IR" "--profile --gpu B200|--gpu B200: not a row" "--gpu H100|--gpu goes with --profile"; do
  # shellcheck disable=SC2086
  if msg=$("$DITC" bench models/dit.dit "${TINY[@]}" --iters 1 ${bad%%|*} 2>&1); then echo "FAIL: accepted ${bad%%|*}"; exit 1; fi
  grep -q -- "${bad#*|}" <<<"$msg" || { echo "FAIL: ${bad%%|*}: $msg"; exit 1; }
done
echo ok
