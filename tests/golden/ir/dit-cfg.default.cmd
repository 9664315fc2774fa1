# forward_with_cfg after the default pipeline: the doubled half batch, the timestep embedding and the
# guidance combine each one kernel (concat groups), the unpatchify transpose apart.
models/dit.dit --set input_size=8 --set in_channels=4 --set patch_size=2 --set hidden_size=32 --set depth=1 --set num_heads=2 --set num_classes=10 --entry forward_with_cfg --passes default
