#!/usr/bin/env bash
# paper-att-fgq on the emulated device (--backend emu): every check of the case at fp32 (forward and,
# where the case has them, forward_with_cfg, DDIM and DDPM), then forward at f16 and bf16.
source "$(dirname "$0")/common.bash"
# The mediator attention amplifies rounding about tenfold at both low precisions (f16 3.3e-2 vs
# 2e-3..7e-3 for the other cases; bf16 2.0e-1), so these bounds only catch gross breakage.
EMU_F16_TOL=5e-2
EMU_BF16_TOL=2.5e-1
check_emu paper-att-fgq
