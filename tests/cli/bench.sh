#!/usr/bin/env bash
# `ditc bench` runs on the reference executor and the emulated device and reports one JSON line.
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
echo ok
