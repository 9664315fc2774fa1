#!/usr/bin/env bash
# dit-tiny-p2-pass-w8 on the emulated device: the int8 weights and their scales computed into the
# weights blob, a dequantize kernel before each GEMM; forward and forward_with_cfg within 1e-4, at
# f16 and bf16 within 1e-2.
source "$(dirname "$0")/common.bash"
check_pass_emu dit-tiny-p2-pass-w8 1e-4 --quantize w8
