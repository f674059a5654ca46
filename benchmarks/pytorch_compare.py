r"""dvn_jax against the same DVN written plainly in PyTorch, on this machine.

  pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
  python benchmarks/pytorch_compare.py [--batch_sizes=16,32,64] [--repeats=5]

Not a test dependency: PyTorch is only needed here. The PyTorch side is
what a typical reimplementation runs, eagerly, step by step:
- train step (configs/horses.py's mix): random 24x24 crops; half the batch
  from inference (20 ascent steps of size 50 on sigmoid(v) from y = 0, box
  clip, one uniformly drawn step per example); half adversarial (1 ascent
  step of size 50 on the cross-entropy between v and the relaxed IoU, from
  the ground truth); relaxed IoU targets; one Adam update of the value net
  (dropout on) with the sigmoid cross-entropy of Eq. 11;
- prediction: one 32x32 image, 36 crops of 24, 30 ascent steps of size 50,
  crop masks averaged.
The same value net (paper Fig. 2: conv 64/128/128 5x5, FC 384/192/1) on
both sides, float32, all cores. dvn_jax runs its jitted train step and
predict function from configs/horses.py with the same batch size. Prints
milliseconds and the ratio PyTorch / JAX (> 1: JAX is faster).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import app
from absl import flags

import machine
from configs import horses as horses_config
from dvn_jax import builders
from dvn_jax import cli
from dvn_jax import input_pipeline
from dvn_jax import predictors
from dvn_jax import train
from dvn_jax.datasets import horses

_BATCH_SIZES = flags.DEFINE_list('batch_sizes', ['16', '32', '64'],
                                 'Train batch sizes to compare.')
cli.check_whole_numbers(_BATCH_SIZES)
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls per measurement.',
                                lower_bound=1)

CROP, STEPS_TRAIN, STEPS_TEST, ETA = 24, 20, 30, 50.0


# ----------------------------------------------------------- PyTorch ----


def torch_value_net(torch):
  nn = torch.nn

  class ValueNet(nn.Module):
    """Paper Fig. 2, as in models.SegmentationValueNet (NCHW)."""

    def __init__(self):
      super().__init__()
      self.convs = nn.Sequential(
          nn.Conv2d(4, 64, 5, 1, 2), nn.ReLU(),
          nn.Conv2d(64, 128, 5, 2, 2), nn.ReLU(),
          nn.Conv2d(128, 128, 5, 2, 2), nn.ReLU())
      self.head = nn.Sequential(
          nn.Flatten(), nn.Linear(128 * 6 * 6, 384), nn.ReLU(),
          nn.Dropout(0.25), nn.Linear(384, 192), nn.ReLU(),
          nn.Linear(192, 1))

    def forward(self, x, y):
      return self.head(self.convs(torch.cat([2 * x - 1, 2 * y - 1], 1)))[:, 0]

  return ValueNet()


def torch_iou(torch, y, y_star):
  inter = torch.minimum(y, y_star).sum((1, 2, 3))
  union = torch.maximum(y, y_star).sum((1, 2, 3))
  return torch.where(union > 0, inter / union.clamp_min(1e-12),
                     torch.ones_like(union))


def torch_ascent(torch, net, x, y, steps, objective, keep_all=False):
  """Projected gradient ascent on y; returns the final y or all of them."""
  trajectory = []
  for _ in range(steps):
    y = y.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(net, x, y).sum(), y)
    y = (y + ETA * grad).clamp(0, 1).detach()
    trajectory.append(y)
  return torch.stack(trajectory) if keep_all else y


def make_torch_step(torch, net, optimizer, images, masks, batch):
  bce = torch.nn.functional.binary_cross_entropy_with_logits
  gen = torch.Generator().manual_seed(0)

  def step():
    idx = torch.randint(0, len(images), (batch,), generator=gen)
    rows = torch.randint(0, 32 - CROP + 1, (batch,), generator=gen)
    cols = torch.randint(0, 32 - CROP + 1, (batch,), generator=gen)
    x = torch.stack([images[i, :, r:r + CROP, c:c + CROP]
                     for i, r, c in zip(idx, rows, cols)])
    y_star = torch.stack([masks[i, :, r:r + CROP, c:c + CROP]
                          for i, r, c in zip(idx, rows, cols)])
    half = batch // 2
    net.eval()
    value = lambda n, x, y: torch.sigmoid(n(x, y))
    traj = torch_ascent(torch, net, x[:half], torch.zeros_like(y_star[:half]),
                        STEPS_TRAIN, value, keep_all=True)
    pick = torch.randint(0, STEPS_TRAIN, (half,), generator=gen)
    y_inf = traj[pick, torch.arange(half)]
    target = y_star[half:]
    adv_loss = lambda n, x, y: bce(n(x, y), torch_iou(torch, y, target),
                                   reduction='none')
    y_adv = torch_ascent(torch, net, x[half:], target, 1, adv_loss)
    y = torch.cat([y_inf, y_adv])
    v_star = torch_iou(torch, y, y_star)
    net.train()
    optimizer.zero_grad()
    loss = bce(net(x, y), v_star)
    loss.backward()
    optimizer.step()
    return float(loss)

  return step


def make_torch_predict(torch, net, image):
  starts = np.round(np.linspace(0, 32 - CROP, 6)).astype(int)
  offsets = [(r, c) for r in starts for c in starts]
  x = torch.stack([image[:, r:r + CROP, c:c + CROP] for r, c in offsets])
  value = lambda n, x, y: torch.sigmoid(n(x, y))

  def predict():
    with torch.enable_grad():
      net.eval()
      y = torch_ascent(torch, net, x, torch.zeros(len(x), 1, CROP, CROP),
                       STEPS_TEST, value)
    total = torch.zeros(1, 32, 32)
    count = torch.zeros(1, 32, 32)
    for (r, c), crop in zip(offsets, y):
      total[:, r:r + CROP, c:c + CROP] += crop
      count[:, r:r + CROP, c:c + CROP] += 1
    return total / count

  return predict


# --------------------------------------------------------------- JAX ----


def make_jax_step(config, images, masks):
  model = builders.create_model(config)
  tx = builders.make_optimizer(config.optimizer)
  step = train.make_train_step(model, tx, config)
  holder = {'state': train.create_state(model, tx, config), 'i': 0}

  def one():
    indices = input_pipeline.batch_indices(0, holder['i'], len(images),
                                           config.batch_size)[None]
    holder['i'] += 1
    holder['state'], metrics = step(holder['state'], images, masks, indices)
    return jax.block_until_ready(metrics['loss'][0])

  return one, model, holder


def main(_):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    cli.fail('PyTorch is not installed (it is not a dependency); pip install '
             'torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu')
  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)
  data = horses.load_weizmann_horses()
  train_split, test_image = data['train'], data['test'].images[:1]
  images_j = input_pipeline.images_to_float(train_split.images)
  masks_j = input_pipeline.masks_to_float(train_split.masks)
  images_t = torch.from_numpy(np.asarray(images_j)).permute(0, 3, 1, 2)
  masks_t = torch.from_numpy(np.asarray(masks_j)).permute(0, 3, 1, 2)
  print(f'# {machine.describe()}; PyTorch {torch.__version__} '
        f'({torch.get_num_threads()} threads)')
  print('| work | PyTorch ms | dvn_jax ms | PyTorch / JAX |')
  print('|---|---|---|---|')
  params = None
  for batch in (int(b) for b in _BATCH_SIZES.value):
    config = horses_config.get_config()
    config.batch_size = batch
    jax_step, model, holder = make_jax_step(config, images_j, masks_j)
    jax_s = machine.median_seconds(jax_step, _REPEATS.value)
    net = torch_value_net(torch)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-4)
    torch_s = machine.median_seconds(
        make_torch_step(torch, net, optimizer, images_t, masks_t, batch),
        _REPEATS.value)
    print(f'| train step, batch {batch} | {1e3 * torch_s:.0f} | '
          f'{1e3 * jax_s:.0f} | {torch_s / jax_s:.2f} |', flush=True)
    params = holder['state'].params
  config = horses_config.get_config()
  predict = predictors.make_predict_fn(model, config)
  jax_s = machine.median_seconds(
      lambda: jax.block_until_ready(predict(params, test_image)),
      _REPEATS.value)
  image_t = torch.from_numpy(np.asarray(
      input_pipeline.images_to_float(test_image))[0]).permute(2, 0, 1)
  torch_s = machine.median_seconds(make_torch_predict(torch, net, image_t),
                           _REPEATS.value)
  print(f'| predict 1 image, 36 crops x 30 steps | {1e3 * torch_s:.0f} | '
        f'{1e3 * jax_s:.0f} | {torch_s / jax_s:.2f} |')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.make_flags_parser())
