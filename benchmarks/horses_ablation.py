"""The paper's Table 4 ablation on Weizmann horses, as one command.

  python benchmarks/horses_ablation.py --root=/tmp/ablation \
      [--config=configs/horses.py] [--config.num_train_steps=...] \
      [--output=docs/horses_ablation.md]

Trains three value networks on train+val that differ only in their tuple mix
(inference + ground truth, + stratified, + adversarial), scores each on the
test split (the paper's Table 4 is on test; nothing here is chosen by it),
then scores the inference + adversarial model with mask averaging and joint
inference over 9, 25 and 36 crops, on binarised and on raw (non-binary)
masks. Writes a markdown table next to the paper's numbers. Reruns resume:
each model lives in <root>/<variant>, and a finished one is not retrained.
"""

from __future__ import annotations

import functools
import os
import time

import machine
from absl import app
from absl import flags
from ml_collections import config_flags

from dvn_jax import builders
from dvn_jax import cli
from dvn_jax import evaluate
from dvn_jax import files
from dvn_jax import predictors
from dvn_jax import train
from dvn_jax.datasets import horses

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(__file__), '..', 'configs',
                           'horses.py'), 'Base config.', lock_config=True)
_ROOT = flags.DEFINE_string('root', None, 'Folder for the three workdirs.')
_OUTPUT = flags.DEFINE_string('output', None, 'Markdown file to write.')
_NUM_TEST_IMAGES = flags.DEFINE_integer(
    'num_test_images', 0, 'Score only the first N test images (0: all); for '
    'quick checks of the script, not for results.', lower_bound=0)
flags.mark_flags_as_required(['root'])

# Paper Table 4 (test mean IoU, %).
TUPLE_VARIANTS = {
    'inference+ground_truth': ({'inference': 0.5, 'ground_truth': 0.5}, 76.7),
    'inference+stratified': ({'inference': 0.5, 'stratified': 0.5}, 80.8),
    'inference+adversarial': ({'inference': 0.5, 'adversarial': 0.5}, 81.6),
}
# (combine, crops, binary) -> paper's number or None where it has none.
CROP_VARIANTS = {
    ('average', 9, True): 81.3, ('joint', 9, True): 81.6,
    ('average', 25, False): 69.6, ('joint', 25, False): 80.3,
    ('average', 25, True): 83.1, ('joint', 25, True): 83.1,
    ('average', 36, True): None, ('joint', 36, True): None,
}


def variant_config(base, mix: dict[str, float]):
  config = base.copy_and_resolve_references()
  with config.unlocked():
    config.data.train_split = 'trainval'
    # Trained on train+val, so val scores would mean nothing: the loop
    # scores nothing (see run: evaluate_last=False); test is scored below.
    config.data.eval_split = 'val'
    config.eval_every_steps = 10**9
    for name in config.tuples.mix:
      config.tuples.mix[name] = mix.get(name, 0.0)
  return config


def score(config, params, split, combine: str, num_crops: int
          ) -> dict[str, dict[str, float]]:
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.eval.combine = combine
    config.eval.num_crops = num_crops
  model = builders.create_model(config)
  predict = functools.partial(predictors.make_predict_fn(model, config), params)
  soft = evaluate.predict_in_batches(predict, split.images,
                                     config.eval.batch_size)[..., 0]
  return {
      'binary': evaluate.segmentation_metrics(soft >= config.eval.threshold,
                                              split.masks),
      'non-binary': evaluate.soft_segmentation_metrics(soft, split.masks),
  }


def paper(value: float | None) -> str:
  return '–' if value is None else f'{value:.1f}'


def run(base, root: str, num_test_images: int = 0) -> str:
  """Trains/scores everything; returns the markdown table."""
  test = train.load_data(base)['test']
  if num_test_images:
    test = horses.SegmentationSplit(test.images[:num_test_images],
                                    test.masks[:num_test_images],
                                    test.names[:num_test_images])
  lines = ['| configuration | paper mean IoU | ours mean IoU | ours global IoU |',
           '| --- | --- | --- | --- |']
  params = {}
  for name, (mix, paper_iou) in TUPLE_VARIANTS.items():
    config = variant_config(base, mix)
    workdir = os.path.join(root, name)
    start = time.perf_counter()
    train.train_and_evaluate(config, workdir, evaluate_last=False)
    model = builders.create_model(config)
    params[name] = train.load_trained_params(model, config, workdir)
    result = score(config, params[name], test, config.eval.combine,
                   config.eval.num_crops)['binary']
    label = name.replace('+', ' + ').replace('_', ' ')
    lines.append(f'| {label} ({config.eval.combine}, {config.eval.num_crops} '
                 f'crops) | {paper(paper_iou)} | {result["mean_iou"]:.1f} | '
                 f'{result["global_iou"]:.1f} |')
    print(f'{name}: {result} ({time.perf_counter() - start:.0f} s)')
  config = variant_config(base, TUPLE_VARIANTS['inference+adversarial'][0])
  scores = {}   # one inference per (combine, crops) serves both mask kinds
  for (combine, crops, binary), paper_iou in CROP_VARIANTS.items():
    if (combine, crops) not in scores:
      scores[combine, crops] = score(config, params['inference+adversarial'],
                                     test, combine, crops)
    result = scores[combine, crops]['binary' if binary else 'non-binary']
    label = (f'DVN + {"joint inference" if combine == "joint" else "mask averaging"}'
             f'{"" if binary else " non-binary"} ({crops} crops)')
    lines.append(f'| {label} | {paper(paper_iou)} | {result["mean_iou"]:.1f} | '
                 f'{result["global_iou"]:.1f} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  del argv
  cli.quiet_library_logs()
  with cli.reporting_errors():
    machine.check_output(_OUTPUT.value)
    files.check_output_dir(_ROOT.value, '--root')
    table = run(_CONFIG.value, _ROOT.value, _NUM_TEST_IMAGES.value)
  c = _CONFIG.value
  machine.print_and_save(
      table, _OUTPUT.value,
      f'Paper Table 4 vs ours; test split; each model trained on train+val '
      f'for {c.num_train_steps} steps (batch {c.batch_size}, '
      f'{c.tuples.inference_points} tuple(s) per inference trajectory); '
      f'{machine.describe()}.')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser(_CONFIG))
