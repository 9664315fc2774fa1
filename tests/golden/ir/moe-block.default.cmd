# MoE MLP with 4 experts, top-2, default pipeline: hoist-adaln merges the router with every fc1, route-experts routes and narrows it back to the router.
models/dit.dit --set input_size=8 --set in_channels=4 --set patch_size=2 --set hidden_size=32 --set depth=1 --set num_heads=2 --set num_classes=10 --set moe_experts=4 --set moe_top_k=2 --passes default
