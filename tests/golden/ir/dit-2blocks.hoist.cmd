# Two blocks: every adaLN modulation (and the final layer's) merged into one product.
models/dit.dit --set input_size=8 --set in_channels=4 --set patch_size=2 --set hidden_size=32 --set depth=2 --set num_heads=2 --set num_classes=10 --passes cse,hoist-adaln,dce
