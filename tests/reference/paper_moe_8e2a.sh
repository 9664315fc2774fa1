#!/usr/bin/env bash
# paper-moe-8e2a: the seed study's variant, one forward pass against the study's own model code, with
# the default passes (route-experts runs the experts on the routed rows only) and with none (the dense
# form the model language writes); the two must also agree with each other.
source "$(dirname "$0")/common.bash"
check_forward paper-moe-8e2a
cp "$TMP/paper-moe-8e2a.out.safetensors" "$TMP/routed.safetensors"
BACKEND_ARGS=(--backend ref --passes none)
check_forward paper-moe-8e2a
"$DITC" compare "$TMP/routed.safetensors:out" "$TMP/paper-moe-8e2a.out.safetensors:out" --tol 1e-5
# The experts' MACs drop by E/k = 4: dense - routed = 3/4 of the dense experts' MACs
# (2 blocks x 64 tokens x 8 experts x 2 x 96 x 384 at batch 1).
# shellcheck disable=SC2046
dense=$("$DITC" stats models/dit.dit $(settings paper-moe-8e2a) --passes none --json | jq .macs)
# shellcheck disable=SC2046
routed=$("$DITC" stats models/dit.dit $(settings paper-moe-8e2a) --json | jq .macs)
experts=$((2 * 64 * 8 * 2 * 96 * 384))
[ "$((dense - routed))" = "$((experts * 3 / 4))" ] || { echo "FAIL macs: dense $dense, routed $routed"; exit 1; }
echo "ok   macs: dense $dense, routed $routed (experts $experts -> $((experts / 4)))"
