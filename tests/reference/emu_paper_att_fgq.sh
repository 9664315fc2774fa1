#!/usr/bin/env bash
# paper-att-fgq on the emulated device (--backend emu): forward, forward_with_cfg, DDIM and DDPM at fp32,
# forward at bf16, against the original DiT code.
source "$(dirname "$0")/common.bash"
check_emu paper-att-fgq
