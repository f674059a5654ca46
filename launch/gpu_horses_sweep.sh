#!/usr/bin/env bash
# The horse val sweep on one GPU machine (any single-GPU Linux box with JAX
# + CUDA):
#   bash launch/gpu_horses_sweep.sh OUT_DIR [PHASE1_S] [PHASE2_S] [SWEEP FLAGS...]
# Installs the wheels in .whl (packages the machine lacks) when present,
# runs benchmarks/sweep.py with every variant side by side and copies
# the report, logs, metrics and the final parameters to OUT_DIR.
set -u
out=${1:?usage: gpu_horses_sweep.sh OUT_DIR [PHASE1_S] [PHASE2_S]}
phase1=${2:-300}
phase2=${3:-100}
root=${SWEEP_ROOT:-/tmp/horses_sweep}  # an existing root resumes its runs
mkdir -p "$out"
. launch/gpu_env.sh
python3 benchmarks/sweep.py --root=$root --steps=1000000 \
  --eval_every=2000 --deadline_s="$phase1" --finetune_deadline_s="$phase2" \
  --set=eval.batch_size=40 --output="$out/sweep.md" "${@:4}" 2>&1 | tee "$out/sweep.log"
status=${PIPESTATUS[0]}
if [ "$status" != 0 ]; then tail -25 $root/base.log; fi
tail -4 $root/final.log 2>/dev/null
tar czf "$out/runs.tgz" --exclude=checkpoints --exclude='events.out*' -C /tmp horses_sweep
cp $root/final.npz "$out/" 2>/dev/null
exit "$status"
