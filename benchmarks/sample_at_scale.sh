#!/usr/bin/env bash
# benchmarks/results/sample-at-scale-*.md: the digits model to an .npz on 1 and 2 processes (ref backend, one
# thread each). N=500 by default (N=10000 takes about 80 minutes a process on a 2-core machine): N=10000 benchmarks/sample_at_scale.sh
cd "$(dirname "$0")/.." && N=${N:-500} && o=${OUT:-/tmp/sample-at-scale} && mkdir -p "$o" && : >"$o/times"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_plm=isolated OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_hwloc_base_binding_policy=none
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
A="DiT-digits --weights models/digits/dit-digits.safetensors --sampler ddpm --steps 50 --cfg-scale 1.5 --backend ref --seed 0 --num-samples $N --batch 50"
s=$(date +%s.%N); ./build/ditc sample $A --output $o/p1.npz 2>$o/p1.log; e=$(date +%s.%N); echo "p1 $s $e" >> $o/times
s=$(date +%s.%N); mpirun -n 2 ./build/ditc sample $A --output $o/p2.npz 2>$o/p2.log; e=$(date +%s.%N); echo "p2 $s $e" >> $o/times
cmp $o/p1.npz $o/p2.npz && echo IDENTICAL >> $o/times
./build/digits_eval "$o/p1.npz"; cat "$o/times" "$o/p1.log" "$o/p2.log"
