#!/usr/bin/env bash
# dit-tiny-p2 on the emulated device (--backend emu): every check of the case at fp32 (forward and,
# where the case has them, forward_with_cfg, DDIM and DDPM), then forward at f16 and bf16.
source "$(dirname "$0")/common.bash"
# bf16: every weight and activation rounded to 8 mantissa bits gives 1.9e-2 on these random
# (untrained) weights, spread over every op (codegen's test_e2e_dit_tiny measures the same).
EMU_BF16_TOL=3e-2
check_emu dit-tiny-p2
