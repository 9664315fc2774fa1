# A small VAE decoder (models/vae.dit, two levels of 8 channels, one resnet each) through conv-gemm and
# fuse: the upsample before up_blocks.0.upsamplers.0.conv is folded into that conv's im2col {up=2} (the
# reshape/concat copies are gone), and every group norm's layernorm, reshape back, affine and SiLU form
# one norm group anchored at the SiLU (or at the affine's add where no SiLU follows: the attention's).
models/vae.dit --set block_out_channels=8,8 --set layers_per_block=0 --set norm_num_groups=4 --set latent_size=2 --entry decode --passes conv-gemm,canonicalize,dce,fuse
