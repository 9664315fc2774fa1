#!/usr/bin/env bash
# dit-tiny-p4-eps on the emulated device (--backend emu): every check of the case at fp32 (forward and,
# where the case has them, forward_with_cfg, DDIM and DDPM), then forward at f16 and bf16.
source "$(dirname "$0")/common.bash"
# bf16 rounding on random weights (see emu_dit_tiny_p2.sh): 3.0e-2 measured.
EMU_BF16_TOL=5e-2
check_emu dit-tiny-p4-eps
