#!/usr/bin/env bash
# paper-att-fgq (fine-grained grouped-query attention) through --backend cuda under the simulated CUDA driver (DITC_CUDA_SIM=1): the real CUDA
# backend with its CUBINs run on the emulated device; every check of the case at fp32 (forward and,
# where the case has them, forward_with_cfg and the 10-step DDIM and DDPM loops on the device), then
# forward (and forward_with_cfg) at bf16 within 1e-2.  Skipped without NVRTC.
source "$(dirname "$0")/common.bash"
check_cuda_sim paper-att-fgq
