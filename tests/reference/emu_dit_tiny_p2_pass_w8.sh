#!/usr/bin/env bash
# dit-tiny-p2-pass-w8 on the emulated device: the int8 weights and their scales computed into the
# weights blob, a dequantize kernel before each f32 GEMM; forward and forward_with_cfg within 1e-4,
# then at f16 and bf16 (the GEMM operands in that precision) within 1e-2.
source "$(dirname "$0")/common.bash"
BACKEND_ARGS=(--backend emu)
check_pass dit-tiny-p2-pass-w8 1e-4 --quantize w8
for p in f16 bf16; do
  BACKEND_ARGS=(--backend emu --precision "$p")
  check_pass dit-tiny-p2-pass-w8 1e-2 --quantize w8
done
