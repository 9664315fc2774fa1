#!/usr/bin/env bash
# paper-moe-8e2a on the emulated device (--backend emu), the experts routed by route-experts (the
# generated routing, gather, grouped GEMM and combine kernels): every check of the case at fp32 (forward and,
# where the case has them, forward_with_cfg, DDIM and DDPM), then forward (and forward_with_cfg) at f16
# and bf16 within 1e-2 (codegen/lower.c's mixed-precision policy).
source "$(dirname "$0")/common.bash"
check_emu paper-moe-8e2a
