#!/usr/bin/env bash
# Value-net members of the released pair's recipe at batch 64 / 128 / 256,
# two seeds each, and the five moving-average FCNs, on one GPU machine
# (any single-GPU Linux box with JAX + CUDA):
#   bash launch/gpu_horses_members.sh OUT_DIR [TRAIN_STEPS] [PHASE1_S] [PHASE2_S]
# Phase 1 trains every variant of configs/horses_sweep.py:members on train
# side by side (val every TRAIN_STEPS/2 steps, cut at PHASE1_S seconds);
# phase 2 fine-tunes each on train+val for 25% more steps (cut at PHASE2_S)
# and exports both versions (benchmarks/sweep.py --finetune_which=all).
# Meanwhile the five FCNs of configs/horses_fcn.py:ema train twice, on train
# and on train+val, in two streams one seed after another. Then the paper's
# protocol with the released test-time settings (the ascent started at 0.1
# x the FCNs' mask, their log-likelihood as a prior at 2.35e-4): each
# batch size's train-only pair is scored on val with the train-only FCNs,
# and the train+val pair of the best on val (mean IoU) is scored on test
# once, with the train+val FCNs. OUT_DIR gets each batch size's two seeds
# stacked in float16 (pair_b<B>_train.npz, pair_b<B>_trainval.npz), the
# FCN stacks (fcns_train.npz, fcns_tv.npz), choice.txt (the val scores, the
# choice and its test score), the sweep's report and the logs (logs.tgz).
# For a quick check elsewhere, SWEEP_FLAGS and FCN_FLAGS add flags to the
# sweep and to the FCN runs, EVAL_FLAGS to the val and test scores. On a
# CPU keep the scores' batch at 1 image (the 40 here compiles for hours
# there; docs/throughput.md), e.g. for a 4-step check:
#   SWEEP_FLAGS="--set=eval.num_crops=4 --set=eval.batch_size=4" \
#   FCN_FLAGS="--config.num_train_steps=4 --config.eval_every_steps=4 --config.eval.num_crops=4" \
#   EVAL_FLAGS="--config.eval.num_crops=4 --config.eval.batch_size=1" \
#   bash launch/gpu_horses_members.sh /tmp/out 4 900 300
set -u
out=${1:?usage: gpu_horses_members.sh OUT_DIR [TRAIN_STEPS] [PHASE1_S] [PHASE2_S]}
steps=${2:-8000}
phase1=${3:-240}
phase2=${4:-75}
root=${SWEEP_ROOT:-/tmp/horses_members}
mkdir -p "$out" "$root"
. launch/gpu_env.sh
start=$(date +%s)
fcn_stream() {  # split (train or trainval) -> five FCNs, then their stack
  local split=$1 tag s w
  tag=$([ "$1" = train ] && echo train || echo tv)
  for s in 0 1 2 3 4; do
    w=$root/fcn_${tag}_s$s
    python3 -m dvn_jax.main --config=configs/horses_fcn.py:ema --workdir=$w \
      --config.data.train_split=$split --config.seed=$s --config.eval.batch_size=40 ${FCN_FLAGS:-} &&
    python3 -m dvn_jax.main --config=configs/horses_fcn.py:ema --workdir=$w \
      --config.data.train_split=$split --config.seed=$s ${FCN_FLAGS:-} --mode=export --params=$w.npz || return 1
    echo "fcn $split seed $s done at $(( $(date +%s) - start )) s"
  done
  python3 -m dvn_jax.ensemble --dtype=float16 --output=$out/fcns_$tag.npz $root/fcn_${tag}_s?.npz
}
fcn_stream train > $root/fcns_train.log 2>&1 &
fcns_train=$!
fcn_stream trainval > $root/fcns_tv.log 2>&1 &
fcns_tv=$!
python3 benchmarks/sweep.py --root=$root --sweep=configs/horses_sweep.py:members \
  --steps=$steps --eval_every=$((steps / 2)) --deadline_s=$phase1 \
  --finetune_deadline_s=$phase2 --finetune_which=all --set=eval.batch_size=40 \
  --output=$root/members.md ${SWEEP_FLAGS:-} 2>&1 | tee $root/members.log
status=${PIPESTATUS[0]}
echo "sweep ended at $(( $(date +%s) - start )) s"
wait $fcns_train; echo "fcns on train exit $? ($(tail -1 $root/fcns_train.log))"
wait $fcns_tv; echo "fcns on train+val exit $? ($(tail -1 $root/fcns_tv.log))"
for b in 64 128 256; do
  for split in train trainval; do
    files=$(ls $root/interp_b${b}_s*_$split.npz 2>/dev/null)
    [ -n "$files" ] && python3 -m dvn_jax.ensemble --dtype=float16 \
      --output=$out/pair_b${b}_$split.npz $files
  done
done
pack_logs() {
  tar czf "$out/logs.tgz" --exclude=checkpoints --exclude='events.out*' \
    --exclude='*.npz' -C $(dirname $root) $(basename $root)
}
pack_logs  # again at the end; this one survives a cut in the scoring
# The released test-time settings (docs/log/horses.md, "The FCNs' log-likelihood
# inside the test-time ascent"): start 0.1 x the FCNs' mask, prior 2.35e-4.
score() {  # split params fcns -> "mean global" of the printed line
  python3 -m dvn_jax.main --config=configs/horses.py --mode=evaluate --split=$1 \
    --params=$2 --config.eval.fcn.params=$3 --config.eval.fcn.start_scale=0.1 \
    --config.eval.fcn.prior_weight=2.35e-4 --config.eval.batch_size=40 ${EVAL_FLAGS:-} 2>&1 |
    tee $root/score_$1_$(basename $2 .npz).log | sed -n "s/^$1: mean IoU \([0-9.]*\)%, global IoU \([0-9.]*\)%$/\1 \2/p"
}
choice=$out/choice.txt
if [ -f $out/fcns_train.npz ] && [ -f $out/fcns_tv.npz ]; then
  best=; best_iou=-1
  for b in 64 128 256; do  # side by side: the GPU has room for all three
    [ -f $out/pair_b${b}_train.npz ] &&
      score val $out/pair_b${b}_train.npz $out/fcns_train.npz > $root/val_b$b.txt &
  done
  wait
  for b in 64 128 256; do
    [ -f $out/pair_b${b}_train.npz ] || continue
    read -r m g < $root/val_b$b.txt
    echo "val, batch $b pair + FCNs: mean IoU ${m:-?}, global IoU ${g:-?}" | tee -a $choice
    if [ -n "${m:-}" ] && python3 -c "import sys; sys.exit(not $m > $best_iou)"; then
      best=$b; best_iou=$m
    fi
  done
  if [ -n "$best" ] && [ -f $out/pair_b${best}_trainval.npz ]; then
    echo "chosen on val: batch $best" | tee -a $choice
    read -r m g <<< "$(score test $out/pair_b${best}_trainval.npz $out/fcns_tv.npz)"
    echo "test, batch $best pair (train+val) + FCNs (train+val): mean IoU ${m:-?}, global IoU ${g:-?}" | tee -a $choice
  else
    echo "no pair scored on val (see score_*.log in logs.tgz); test not scored" | tee -a $choice
  fi
else
  echo "an FCN stack is missing (see the fcns_*.log in logs.tgz); nothing scored" | tee -a $choice
fi
echo "done at $(( $(date +%s) - start )) s"
pack_logs
ls -la $out
exit "$status"
