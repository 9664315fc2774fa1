#!/usr/bin/env bash
# dit-tiny-p2-pass-w8a8: int8 weights and per-token dynamic int8 activations with exact int32 sums
# (--quantize w8a8) against the original DiT code, forward and forward_with_cfg within 1e-3 on the
# reference executor.
source "$(dirname "$0")/common.bash"
check_pass dit-tiny-p2-pass-w8a8 1e-3 --quantize w8a8
