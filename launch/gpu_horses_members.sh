#!/usr/bin/env bash
# Value-net members of the released pair's recipe at batch 64 / 128 / 256,
# two seeds each, and the five moving-average FCNs, on one GPU machine
# (used through the `device` tool; any single-GPU Linux box with JAX + CUDA):
#   bash launch/gpu_horses_members.sh OUT_DIR [TRAIN_STEPS] [PHASE1_S] [PHASE2_S]
# Phase 1 trains every variant of configs/horses_sweep.py:members on train
# side by side (val every TRAIN_STEPS/2 steps, cut at PHASE1_S seconds);
# phase 2 fine-tunes each on train+val for 25% more steps (cut at PHASE2_S)
# and exports both versions; no test is scored (benchmarks/sweep.py
# --finetune_which=all). Meanwhile the five FCNs of configs/horses_fcn.py:ema
# train on train+val one after another. OUT_DIR gets each batch size's two
# seeds stacked in float16 (<variant>_train.npz: the val-side pair;
# <variant>_trainval.npz: the pair for test once chosen), the FCN stack,
# the report and the logs (logs.tgz). For a quick check elsewhere,
# SWEEP_FLAGS and FCN_FLAGS add flags to the sweep and to the FCN runs.
set -u
out=${1:?usage: gpu_horses_members.sh OUT_DIR [TRAIN_STEPS] [PHASE1_S] [PHASE2_S]}
steps=${2:-8000}
phase1=${3:-240}
phase2=${4:-75}
root=${SWEEP_ROOT:-/tmp/horses_members}
mkdir -p "$out" "$root"
. launch/gpu_env.sh
start=$(date +%s)
(for s in 0 1 2 3 4; do
   w=$root/fcn_tv_s$s
   python3 -m dvn_jax.main --config=configs/horses_fcn.py:ema --workdir=$w \
     --config.data.train_split=trainval --config.seed=$s --config.eval.batch_size=40 ${FCN_FLAGS:-} &&
   python3 -m dvn_jax.main --config=configs/horses_fcn.py:ema --workdir=$w \
     --config.data.train_split=trainval --config.seed=$s ${FCN_FLAGS:-} --mode=export --params=$w.npz || exit 1
   echo "fcn seed $s done at $(( $(date +%s) - start )) s"
 done) > $root/fcns.log 2>&1 &
fcns=$!
python3 benchmarks/sweep.py --root=$root --sweep=configs/horses_sweep.py:members \
  --steps=$steps --eval_every=$((steps / 2)) --deadline_s=$phase1 \
  --finetune_deadline_s=$phase2 --finetune_which=all --set=eval.batch_size=40 \
  --output=$root/members.md ${SWEEP_FLAGS:-} 2>&1 | tee $root/members.log
status=${PIPESTATUS[0]}
echo "sweep ended at $(( $(date +%s) - start )) s"
wait $fcns; echo "fcns exit $? ($(tail -1 $root/fcns.log))"
for b in 64 128 256; do
  for split in train trainval; do
    files=$(ls $root/interp_b${b}_s*_$split.npz 2>/dev/null)
    [ -n "$files" ] && python3 -m dvn_jax.ensemble --dtype=float16 \
      --output=$out/pair_b${b}_$split.npz $files
  done
done
ls $root/fcn_tv_s*.npz > /dev/null 2>&1 && python3 -m dvn_jax.ensemble \
  --dtype=float16 --output=$out/fcns_tv.npz $root/fcn_tv_s*.npz
tar czf "$out/logs.tgz" --exclude=checkpoints --exclude='events.out*' \
  --exclude='*.npz' -C $(dirname $root) $(basename $root)
ls -la $out
exit "$status"
