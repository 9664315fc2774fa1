#!/usr/bin/env bash
# dit-tiny-p2-pass-prune-heads2 on the emulated device: forward and forward_with_cfg at fp32 (1e-5), then at
# f16 and bf16 within 1e-2, the pass its json's variant names applied by its flag.
source "$(dirname "$0")/common.bash"
BACKEND_ARGS=(--backend emu)
check_forward dit-tiny-p2-pass-prune-heads2
check_cfg dit-tiny-p2-pass-prune-heads2
for p in f16 bf16; do
  BACKEND_ARGS=(--backend emu --precision "$p")
  TOL_FORWARD=1e-2 check_forward dit-tiny-p2-pass-prune-heads2
  TOL_FORWARD=1e-2 check_cfg dit-tiny-p2-pass-prune-heads2
done
