"""launch/: sweep expansion into commands and SLURM job arrays."""

import shlex
import subprocess

from configs import horses as horses_config
from configs import horses_sweep
from dvn_jax import builders
from dvn_jax import sweeps
from subprocess_runs import REPO, run_python


def run(*args, timeout=120):
  return run_python(*args, timeout=timeout)


def test_sweep_prints_one_runnable_command_per_variant(tmp_path):
  result = run('launch/sweep.py', '--config=configs/horses.py:smoke',
               '--sweep=configs/horses_sweep.py:smoke',
               f'--workdir_root={tmp_path}', '--set=num_train_steps=2')
  assert result.returncode == 0, result.stderr[-2000:]
  commands = [shlex.split(line) for line in result.stdout.splitlines()]
  assert [c[4] for c in commands] == [f'--workdir={tmp_path}/base',
                                      f'--workdir={tmp_path}/pts1']
  assert '--config.tuples.inference_points=1' in commands[1]
  assert all('--config.num_train_steps=2' in c for c in commands)
  # The printed command trains as printed.
  trained = run_python(*commands[1][1:], timeout=300)
  assert trained.returncode == 0, trained.stderr[-2000:]
  assert (tmp_path / 'pts1' / 'checkpoints' / '2').is_dir()


def test_sweep_writes_a_slurm_job_array(tmp_path):
  script = tmp_path / 'sweep.sbatch'
  result = run('launch/sweep.py', '--config=configs/horses.py',
               '--sweep=configs/horses_sweep.py', '--workdir_root=/ckpt/s',
               f'--slurm_array={script}', '--gpus_per_variant=2')
  assert result.returncode == 0, result.stderr[-2000:]
  text = script.read_text()
  count = len(horses_sweep.get_sweep())
  assert f'#SBATCH --array=0-{count - 1}' in text
  assert '#SBATCH --gres=gpu:2' in text
  assert text.count('python -m dvn_jax.main') == count
  assert '--workdir=/ckpt/s/pts1_b64' in text
  assert 'srun ${commands[$SLURM_ARRAY_TASK_ID]}' in text
  assert subprocess.run(['bash', '-n', str(script)]).returncode == 0


def test_sweep_rejects_an_unknown_field_before_launching(tmp_path):
  result = run('launch/sweep.py', f'--workdir_root={tmp_path}',
               '--set=eval.batchsize=4')
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "error: the config has no field 'eval.batchsize'")


def test_launch_scripts_are_valid_bash():
  for script in ('launch/tpu_vm.sh', 'launch/slurm_gpu.sbatch',
                 'launch/gpu_horses_sweep.sh', 'launch/gpu_horses_members.sh',
                 'launch/gpu_env.sh', 'launch/gpu_throughput.sh'):
    assert subprocess.run(['bash', '-n', script], cwd=REPO).returncode == 0


def test_every_variant_of_the_horse_sweep_is_a_valid_config():
  """A variant a GPU run would reach only after hours fails here first."""
  variants = {**horses_sweep.get_sweep(), **horses_sweep.get_sweep('members')}
  for name, overrides in variants.items():
    config = horses_config.get_config()
    sweeps.check_overrides(config, overrides, name)   # as benchmarks/sweep.py
    config.update_from_flattened_dict(overrides)
    builders.check_config(config)   # raises, naming the field
