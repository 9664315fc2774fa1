#!/usr/bin/env bash
# paper-att-fgq on the emulated device (--backend emu): every check of the case at fp32 (forward and,
# where the case has them, forward_with_cfg, DDIM and DDPM), then forward (and forward_with_cfg) at f16
# and bf16 within 1e-2 (codegen/lower.c's mixed-precision policy).
source "$(dirname "$0")/common.bash"
check_emu paper-att-fgq
