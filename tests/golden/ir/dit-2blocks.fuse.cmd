# Two blocks through fuse and plan-memory: each marks what it decides. fused(%k) = one kernel
# anchored at %k: the attention chain with its head split and merge, fc1 + GELU, and per
# sub-block residual add -> layernorm -> modulate (the residual reaches into the next block).
models/dit.dit --set input_size=8 --set in_channels=4 --set patch_size=2 --set hidden_size=32 --set depth=2 --set num_heads=2 --set num_classes=10 --passes canonicalize,cse,hoist-adaln,canonicalize,dce,fuse,plan-memory
