#!/usr/bin/env bash
# dit-tiny-p2-pass-w8a8 on the emulated device: per-token int8 activations (qscale and quantize
# kernels), the int8 products summed exactly in int32 by the generated qlinear kernel; forward and
# forward_with_cfg within 1e-3, at f16 and bf16 within 1e-2.
source "$(dirname "$0")/common.bash"
check_pass_emu dit-tiny-p2-pass-w8a8 1e-3 --quantize w8a8
