# Two blocks through fuse and plan-memory: each records what it decides. fused(%k kind role) = one
# kernel anchored at %k, of that kind (ir/groups.def), the node playing that role in it: the
# attention chain with its head split and merge, fc1 + GELU (gemm-epilogue), and per sub-block
# residual add -> layernorm -> modulate (norm: the residual reaches into the next block).
models/dit.dit --set input_size=8 --set in_channels=4 --set patch_size=2 --set hidden_size=32 --set depth=2 --set num_heads=2 --set num_classes=10 --passes canonicalize,cse,hoist-adaln,canonicalize,dce,fuse,plan-memory
