#!/usr/bin/env bash
# Train-step and prediction throughput on one GPU machine, the fused loop
# included (docs/throughput.md):
#   bash launch/gpu_throughput.sh OUT_DIR
# Horses (the paper's net, batch 64 and 256, ascents unrolled and rolled,
# 1 and 10 steps a call) and Bibtex (1 and 232 steps a call), each against
# the chip's measured matmul peak; then the whole Bibtex recipe, timed.
set -u
out=${1:?usage: gpu_throughput.sh OUT_DIR}
mkdir -p "$out"
. launch/gpu_env.sh
python3 benchmarks/throughput.py --config=configs/horses.py \
  --batch_sizes=64,256 --unrolls=full,1 --steps_per_call=1,10 \
  --config.eval.batch_size=40 2>&1 | tee "$out/horses.md"
python3 benchmarks/throughput.py --config=configs/bibtex.py \
  --unrolls=full,1 --steps_per_call=1,232 2>&1 | tee "$out/bibtex.md"
python3 benchmarks/bibtex_time_to_accuracy.py 2>&1 | tail -4 | tee "$out/bibtex_recipe.txt"
