#!/usr/bin/env bash
# dit-tiny-p2-pass-prune-heads2: the pass its json's variant names, by its flag, on the reference executor
# (forward and forward_with_cfg) against the original DiT code's result (1e-5).
source "$(dirname "$0")/common.bash"
check_forward dit-tiny-p2-pass-prune-heads2
check_cfg dit-tiny-p2-pass-prune-heads2
