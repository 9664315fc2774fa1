#!/usr/bin/env bash
# dit-tiny-p4-eps: forward, forward_with_cfg, DDIM and DDPM against the original DiT code.
source "$(dirname "$0")/common.bash"
check_forward dit-tiny-p4-eps
check_cfg dit-tiny-p4-eps
check_sampler dit-tiny-p4-eps ddim
check_sampler dit-tiny-p4-eps ddpm
