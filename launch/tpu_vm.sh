#!/usr/bin/env bash
# Train on a Cloud TPU VM (single host or a multi-host pod slice):
#
#   TPU_NAME=dvn ZONE=us-central2-b ACCELERATOR=v4-32 \
#     bash launch/tpu_vm.sh create       # once: create the TPU VM
#   bash launch/tpu_vm.sh setup          # copy this repo, install it
#   bash launch/tpu_vm.sh run --config=configs/horses.py \
#       --workdir=/mnt/shared/horses --config.batch_size=256
#   bash launch/tpu_vm.sh delete
#
# `run` starts `python -m dvn_jax.main ARGS` on every worker at once
# (--worker=all); jax.distributed.initialize() finds the other hosts by
# itself, every chip joins one data-parallel mesh, and only worker 0 writes
# metrics. On a multi-host slice the workdir must be a file system all
# hosts mount (e.g. Filestore over NFS): checkpoints are written
# collectively. (gs:// paths are not supported: the metric writer and the
# workdir checks use local file APIs.) Needs the gcloud CLI, logged in.
set -euo pipefail
: "${TPU_NAME:=dvn}" "${ZONE:=us-central2-b}" "${ACCELERATOR:=v4-8}"
: "${VERSION:=tpu-ubuntu2204-base}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
tpu=(gcloud compute tpus tpu-vm)
command=${1:?usage: tpu_vm.sh create|setup|run ARGS...|delete}
shift
case "$command" in
  create)
    "${tpu[@]}" create "$TPU_NAME" --zone="$ZONE" \
      --accelerator-type="$ACCELERATOR" --version="$VERSION" ;;
  setup)
    tar czf /tmp/dvn_jax.tgz -C "$repo" --exclude=.git --exclude=.venv .
    "${tpu[@]}" scp /tmp/dvn_jax.tgz "$TPU_NAME:~/" --zone="$ZONE" --worker=all
    "${tpu[@]}" ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="
      mkdir -p ~/dvn_jax && tar xzf ~/dvn_jax.tgz -C ~/dvn_jax &&
      cd ~/dvn_jax && python3 -m pip install -q -e . 'jax[tpu]'" ;;
  run)
    args=$(printf ' %q' "$@")
    "${tpu[@]}" ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="
      cd ~/dvn_jax && PYTHONUNBUFFERED=1 python3 -m dvn_jax.main$args" ;;
  delete)
    "${tpu[@]}" delete "$TPU_NAME" --zone="$ZONE" --quiet ;;
  *)
    echo "unknown command $command; use create, setup, run or delete" >&2
    exit 2 ;;
esac
