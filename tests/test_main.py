"""End to end through the real entry point (subprocesses)."""

import numpy as np
import pytest
from PIL import Image

from subprocess_runs import REPO, run_main, run_python

SMOKE = f'--config={REPO / "configs" / "horses.py"}:smoke'


def test_train_resume_and_evaluate(tmp_path):
  workdir = tmp_path / 'run'
  first = run_main(SMOKE, f'--workdir={workdir}')
  assert first.returncode == 0, first.stderr[-2000:]
  assert (workdir / 'checkpoints' / '6').is_dir()
  assert (workdir / 'config.json').is_file()
  assert any(p.name.startswith('events.out.tfevents') for p in workdir.iterdir())
  assert 'val: mean IoU' in first.stdout
  assert 'steps/s, ETA' in first.stderr

  resumed = run_main(SMOKE, f'--workdir={workdir}',
                     '--config.num_train_steps=9')
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert 'Resumed from the checkpoint at step 6' in resumed.stderr
  assert 'Training steps 6..9' in resumed.stderr
  assert (workdir / 'checkpoints' / '9').is_dir()

  evaluated = run_main(SMOKE, f'--workdir={workdir}', '--mode=evaluate')
  assert evaluated.returncode == 0, evaluated.stderr[-2000:]
  assert 'test: mean IoU' in evaluated.stdout
  assert 'scoring the TEST split' in evaluated.stderr
  assert (workdir / 'eval_test.json').is_file()

  # Export the parameters to one file; evaluating the file gives the same.
  params_file = tmp_path / 'released' / 'horses.npz'
  exported = run_main(SMOKE, f'--workdir={workdir}', '--mode=export',
                      f'--params={params_file}')
  assert exported.returncode == 0, exported.stderr[-2000:]
  from_file = run_main(SMOKE, '--mode=evaluate', f'--params={params_file}')
  assert from_file.returncode == 0, from_file.stderr[-2000:]
  assert from_file.stdout == evaluated.stdout
  line = _one_line_error(run_main(SMOKE, '--mode=evaluate',
                                  f'--params={tmp_path / "none.npz"}'))
  assert 'parameter file not found' in line

  # An ensemble of the file with itself: each member's masks, averaged.
  ensemble_file = tmp_path / 'ensemble.npz'
  stacked = run_main(f'--output={ensemble_file}', str(params_file),
                     str(params_file), module='dvn_jax.ensemble')
  assert stacked.returncode == 0, stacked.stderr[-2000:]
  from_ensemble = run_main(SMOKE, '--mode=evaluate', f'--params={ensemble_file}')
  assert from_ensemble.returncode == 0, from_ensemble.stderr[-2000:]
  assert from_ensemble.stdout == evaluated.stdout
  member_file = tmp_path / 'member.npz'
  unstacked = run_main(f'--output={member_file}', '--member=1',
                       str(ensemble_file), module='dvn_jax.ensemble')
  assert unstacked.returncode == 0, unstacked.stderr[-2000:]
  from_member = run_main(SMOKE, '--mode=evaluate', f'--params={member_file}')
  assert from_member.returncode == 0, from_member.stderr[-2000:]
  assert from_member.stdout == evaluated.stdout
  line = _one_line_error(run_main(f'--output={member_file}', '--member=2',
                                  str(ensemble_file), module='dvn_jax.ensemble'))
  assert 'members 0..1, not 2' in line
  line = _one_line_error(run_main(f'--output={member_file}', '--member=0',
                                  str(ensemble_file), str(params_file),
                                  module='dvn_jax.ensemble'))
  assert '--member takes one ensemble file' in line
  line = _one_line_error(run_main(f'--output={ensemble_file}', str(params_file),
                                  module='dvn_jax.ensemble'))
  assert 'two or more parameter files' in line
  # One file of several models (MODEL=FILES), each read back as FILE:model.
  bundle_file = tmp_path / 'bundle.npz'
  bundled = run_main(f'--output={bundle_file}', f'dvn={params_file}',
                     f'pair={params_file},{params_file}',
                     module='dvn_jax.ensemble')
  assert bundled.returncode == 0, bundled.stderr[-2000:]
  assert 'models dvn, pair' in bundled.stdout
  from_bundle = run_main(SMOKE, '--mode=evaluate',
                         f'--params={bundle_file}:dvn')
  assert from_bundle.returncode == 0, from_bundle.stderr[-2000:]
  assert from_bundle.stdout == evaluated.stdout
  line = _one_line_error(run_main(SMOKE, '--mode=evaluate',
                                  f'--params={bundle_file}'))
  assert f"holds the models ['dvn', 'pair']; name one as {bundle_file}:dvn" \
      in line
  line = _one_line_error(run_main(f'--output={bundle_file}',
                                  f'dvn={params_file}', str(params_file),
                                  module='dvn_jax.ensemble'))
  assert 'name every argument as MODEL=FILES, or none of them' in line
  # A path with '=' in a folder's name is a file to stack, not MODEL=FILES.
  swept = tmp_path / 'lr=0.1' / 'run.npz'
  swept.parent.mkdir()
  swept.write_bytes(params_file.read_bytes())
  plain = run_main(f'--output={tmp_path / "plain.npz"}', str(swept),
                   str(params_file), module='dvn_jax.ensemble')
  assert plain.returncode == 0, plain.stderr[-2000:]
  assert '(2 members)' in plain.stdout

  # Segment a user's image of another size; a non-image fails in one line.
  image_path = tmp_path / 'horse.png'
  Image.fromarray(np.random.default_rng(0).integers(
      0, 255, (45, 70, 3), dtype=np.uint8)).save(image_path)
  predicted = run_main(SMOKE, f'--workdir={workdir}',
                       f'--output_dir={tmp_path / "masks"}', str(image_path),
                       module='dvn_jax.predict')
  assert predicted.returncode == 0, predicted.stderr[-2000:]
  mask = np.asarray(Image.open(tmp_path / 'masks' / 'horse_mask.png'))
  assert mask.shape == (45, 70) and set(np.unique(mask)) <= {0, 255}
  (tmp_path / 'notes.jpg').write_text('not an image')
  line = _one_line_error(run_main(SMOKE, f'--workdir={workdir}',
                                  str(tmp_path / 'notes.jpg'),
                                  module='dvn_jax.predict'))
  assert 'notes.jpg is not a readable image' in line
  line = _one_line_error(run_main(SMOKE, f'--workdir={workdir}',
                                  str(tmp_path / 'absent.png'),
                                  module='dvn_jax.predict'))
  assert 'image not found' in line

  # The paper's figures from the exported file (FCN column left out).
  figures = run_main(SMOKE, f'--params={params_file}', '--num_images=2',
                     f'--output_dir={tmp_path / "figures"}',
                     module='dvn_jax.figures')
  assert figures.returncode == 0, figures.stderr[-2000:]
  line = _one_line_error(run_main(SMOKE, f'--params={params_file}',
                                  f'--fcn_params={params_file}',
                                  module='dvn_jax.figures'))
  assert 'need --fcn_config' in line
  for name in ('inference_trajectory', 'qualitative', 'shape_prior'):
    width, height = Image.open(tmp_path / 'figures' / f'{name}.png').size
    assert width >= 3 * 128 and height > 2 * 128  # >= 3 columns, 2 rows


def _one_line_error(result):
  assert result.returncode != 0
  errors = [line for line in result.stderr.splitlines()
            if line.startswith('error: ')]
  assert len(errors) == 1, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  return errors[0]


def test_the_error_line_is_the_last_line_even_if_a_thread_prints_later():
  # As orbax's reader threads of a damaged checkpoint may, after the error.
  script = ('import sys, threading, time\n'
            'from dvn_jax import cli\n'
            'def late():\n'
            '  time.sleep(0.3)\n'
            '  print("late noise", file=sys.stderr, flush=True)\n'
            'threading.Thread(target=late).start()\n'
            'cli.fail("it went wrong", status=1)\n')
  result = run_python('-c', script, timeout=60)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == 'error: it went wrong'


def test_unknown_config_key_is_one_clear_line(tmp_path):
  line = _one_line_error(run_main(SMOKE, f'--workdir={tmp_path}',
                                  '--config.optimizer.lr=0.1'))
  assert "unknown config field 'lr'" in line and '--config.optimizer.lr' in line


def test_unknown_config_argument_is_one_line_naming_the_whole_flag(tmp_path):
  line = _one_line_error(run_main(f'{SMOKE},moon', f'--workdir={tmp_path}'))
  assert f'{SMOKE},moon' in line
  assert "unknown config argument(s) ['moon']" in line


def test_misspelt_config_key_names_the_close_field(tmp_path):
  line = _one_line_error(run_main(SMOKE, f'--workdir={tmp_path}',
                                  '--config.optimizer.learning_rat=0.1'))
  assert "unknown config field 'learning_rat'" in line
  assert 'Did you mean "learning_rate"' in line and '\\' not in line


def test_missing_data_is_one_clear_line_and_leaves_no_workdir(tmp_path):
  for missing in (tmp_path / 'nope.npz', tmp_path / 'no_folder'):
    result = run_main(SMOKE, f'--workdir={tmp_path / "w" / "run"}',
                      f'--config.data.path={missing}')
    line = _one_line_error(result)
    assert result.returncode == 1
    assert str(missing) in line and 'not found' in line
    assert list(tmp_path.iterdir()) == []     # no empty workdir left


# Each command's output path, named where it cannot be written: refused in
# one line before the slow part, with nothing created or changed.
BLOCKER = 'a_file'
UNWRITABLE_OUTPUTS = {
    'train --workdir is a file': (
        'dvn_jax.main', [SMOKE, '--workdir={tmp}/a_file'],
        "cannot write to --workdir '{tmp}/a_file': it is a file"),
    'train --workdir is empty': (
        'dvn_jax.main', [SMOKE, '--workdir='], '--mode=train needs --workdir'),
    'export --params is a folder': (
        'dvn_jax.main', [SMOKE, '--workdir={tmp}/run', '--mode=export',
                         '--params={tmp}'], "--params '{tmp}' names a folder"),
    'export --params under a file': (
        'dvn_jax.main', [SMOKE, '--workdir={tmp}/run', '--mode=export',
                         '--params={tmp}/a_file/x.npz'],
        "cannot write to --params '{tmp}/a_file/x.npz': {tmp}/a_file is a "
        'file'),
    'predict --output_dir is a file': (
        'dvn_jax.predict', ['--config=configs/horses.py',
                            '--params=released/horses_dvn.npz',
                            '--output_dir={tmp}/a_file', '{tmp}/image.png'],
        "cannot write to --output_dir '{tmp}/a_file': it is a file"),
    'ensemble --output is a folder': (
        'dvn_jax.ensemble', ['--output={tmp}', 'released/horses_dvn.npz',
                             'released/horses_dvn.npz'],
        "--output '{tmp}' names a folder"),
    'figures --output_dir under a file': (
        'dvn_jax.figures', [SMOKE, '--params=released/horses_dvn.npz',
                            '--output_dir={tmp}/a_file/figures'],
        "cannot write to --output_dir '{tmp}/a_file/figures'"),
    'sweep --root is a file': (
        'benchmarks/sweep.py', ['--root={tmp}/a_file'],
        "cannot write to --root '{tmp}/a_file': it is a file"),
    'test-time benchmark --output is a folder': (
        'benchmarks/horses_test_time.py', [
            '--params=released/horses_dvn.npz', '--output={tmp}'],
        "--output '{tmp}' names a folder"),
    'SLURM --slurm_array is a folder': (
        'launch/sweep.py', ['--workdir_root={tmp}/runs',
                            '--slurm_array={tmp}'],
        "--slurm_array '{tmp}' names a folder"),
}


@pytest.mark.parametrize('case', list(UNWRITABLE_OUTPUTS))
def test_an_unwritable_output_is_refused_before_any_work(tmp_path, case):
  command, args, expected = UNWRITABLE_OUTPUTS[case]
  (tmp_path / BLOCKER).write_text('kept')
  Image.new('RGB', (8, 8)).save(tmp_path / 'image.png')
  before = {p: p.read_bytes() for p in tmp_path.iterdir()}
  args = [a.replace('{tmp}', str(tmp_path)) for a in args]
  if command.endswith('.py'):
    result = run_python(command, *args, timeout=120)
  else:
    result = run_main(*args, module=command, timeout=120)
  line = _one_line_error(result)
  assert line == result.stderr.strip().splitlines()[-1]
  assert expected.replace('{tmp}', str(tmp_path)) in line
  assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize('args,needle', [
    (['--config=configs/missing.py'], 'missing.py'),
    ([SMOKE, '--config.batch_size=many'], 'batch_size'),
    ([SMOKE, '--config.optimizer.learning_rate=-1'], 'learning_rate'),
    ([SMOKE, '--config.data.train_split=training'], "'training'"),
    ([SMOKE, '--mode=export', '--params=out.npz:dvn'], "without ':dvn'"),
])
def test_bad_command_lines_are_one_clear_line(tmp_path, args, needle):
  line = _one_line_error(run_main(*args, f'--workdir={tmp_path}'))
  assert needle in line


def test_evaluate_without_checkpoint_is_one_clear_line(tmp_path):
  line = _one_line_error(run_main(SMOKE, f'--workdir={tmp_path}',
                                  '--mode=evaluate'))
  assert 'no checkpoint' in line


def test_fcn_baseline_config_trains_and_evaluates(tmp_path):
  config = f'--config={REPO / "configs" / "horses_fcn.py"}:smoke'
  trained = run_main(config, f'--workdir={tmp_path}')
  assert trained.returncode == 0, trained.stderr[-2000:]
  assert 'val: mean IoU' in trained.stdout
  evaluated = run_main(config, f'--workdir={tmp_path}', '--mode=evaluate')
  assert evaluated.returncode == 0, evaluated.stderr[-2000:]
  assert 'test: mean IoU' in evaluated.stdout

  fcn_params = tmp_path / 'fcn.npz'
  exported = run_main(config, f'--workdir={tmp_path}', '--mode=export',
                      f'--params={fcn_params}')
  assert exported.returncode == 0, exported.stderr[-2000:]
  # init_from takes a file of the same network (the FCN's tower alone no
  # longer starts a value net: it tied on val, docs/horses.md, Findings).
  line = _one_line_error(run_main(SMOKE, f'--workdir={tmp_path / "dvn"}',
                                  f'--config.init_from={fcn_params}'))
  assert 'does not fit this config' in line
  assert not (tmp_path / 'dvn').exists()


def test_two_stream_config_trains_and_evaluates(tmp_path):
  config = f'--config={REPO / "configs" / "horses.py"}:two_stream,smoke'
  trained = run_main(config, f'--workdir={tmp_path}')
  assert trained.returncode == 0, trained.stderr[-2000:]
  assert 'val: mean IoU' in trained.stdout
  assert 'mask_convs_0' in trained.stdout + trained.stderr   # its parameters
  evaluated = run_main(config, f'--workdir={tmp_path}', '--mode=evaluate')
  assert evaluated.returncode == 0, evaluated.stderr[-2000:]
  assert 'test: mean IoU' in evaluated.stdout
