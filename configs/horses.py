"""DVN on Weizmann horses 32x32 (paper Sec. 5.2, Table 2).

Train (tuning split: train 160 -> val 40):
  python -m dvn_jax.main --config=configs/horses.py --workdir=/tmp/horses

Final protocol (the paper's: fine-tune the val-chosen model on train+val
200, then evaluate on test); the second command resumes the first run's last
checkpoint and trains 25% more steps on train+val:
  python -m dvn_jax.main --config=configs/horses.py --workdir=/tmp/horses
  python -m dvn_jax.main --config=configs/horses.py --workdir=/tmp/horses \
    --config.data.train_split=trainval --config.num_train_steps=43750
  python -m dvn_jax.main --config=configs/horses.py --workdir=/tmp/horses \
    --mode=evaluate
On a GPU add --config.eval.batch_size=40. benchmarks/sweep.py runs
this protocol over the variants of configs/horses_sweep.py.

A seconds-long run for tests:
  python -m dvn_jax.main --config=configs/horses.py:smoke --workdir=/tmp/smoke

The two-stream value net (image features computed once per inference run,
paper Sec. 6): --config=configs/horses.py:two_stream (or two_stream,smoke).

Persistent inference chains (4 ascent steps per train step instead of a
fresh 20-step trajectory; same val IoU per step, about 2.8x faster steps on
a CPU) and a moving average of the parameters (evaluated; docs/horses.md):
--config=configs/horses.py:chains. Options combine: chains,two_stream,smoke.

Any field can be overridden: --config.optimizer.learning_rate=0.003.
"""

import ml_collections


def ascent(num_steps: int, step_size: float, ascend: str = 'value',
           unroll: int = 0) -> ml_collections.ConfigDict:
  """Settings of gradient ascent in y (inference.AscentSpec).

  unroll: the lax.scan unroll factor; 0 unrolls every step (the fastest on
  this CPU: docs/throughput.md). noise_std: Gaussian noise added to y at
  each step (Langevin-style, paper Sec. 6; 0 = none).
  """
  return ml_collections.ConfigDict(dict(
      num_steps=num_steps, step_size=step_size, projection='box',
      ascend=ascend, unroll=unroll, noise_std=0.0))


def config_options(arg: str | None, allowed: tuple[str, ...]) -> set[str]:
  """The comma-separated options of `--config=FILE:arg`; ValueError naming
  any not in `allowed`."""
  options = set(arg.split(',')) if arg else set()
  unknown = options - set(allowed)
  if unknown:
    names = ', '.join(repr(name) for name in allowed)
    raise ValueError(f'unknown config argument(s) {sorted(unknown)}; use '
                     f"{names} or several, comma-separated "
                     f"('{allowed[0]},{allowed[-1]}')")
  return options


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The paper's setup; `arg='smoke'` shrinks it to run in seconds."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Data-parallel devices: 0 = every device of every host (the batch is split
  # over them; batch_size must be a multiple of their number).
  c.num_devices = 0
  # '' = the 32x32 CHOPPS data embedded in the package; or a path to an npz
  # in the same format, or a TFDS data_dir with weizmann_horses_32x32.
  # num_folds F > 0 with held_out_fold f trains on train_split less its fold
  # f (examples i with i mod F == f): the FCNs of start.folds.
  c.data = ml_collections.ConfigDict(dict(
      path='', train_split='train', eval_split='val', num_folds=0,
      held_out_fold=-1))
  c.image_size = 32
  c.crop_size = 24      # random 24x24 training crops (paper Sec. 5.2)
  c.flip = False        # all Weizmann horses face left
  # Jitter of the training crops (0 = off), one uniform draw per crop:
  # scale (input_pipeline.random_scaled_crops: the crop's zoom in
  # [1 - scale, 1 + scale]) and photometric (input_pipeline.color_jitter).
  c.augment = ml_collections.ConfigDict(dict(
      scale=0.0, brightness=0.0, contrast=0.0, saturation=0.0))

  # activation: the non-linearity after every hidden layer ('relu',
  # 'softplus', 'elu', 'swish'; models.ACTIVATIONS).
  c.model = ml_collections.ConfigDict(dict(
      name='value_net', dropout_rate=0.25,  # keep probability 0.75
      activation='relu'))
  # A parameter file (`--mode=export` of a trained model, e.g. the FCN of
  # configs/horses_fcn.py) whose conv tower starts the value net; '' = random.
  c.init_from = ''
  # Which of init_from's layers start the value net: 'tower' (the conv
  # layers, e.g. from an FCN) or 'all' (every layer of a value-net export:
  # continue a trained or released net with a fresh optimizer state).
  c.init_layers = 'tower'
  # The start y(0) of every inference ascent, in training and at test
  # (ours; fcn_starts.make_start_fn): params '' = P(0), the paper's y = 0; or an
  # FCN's parameter file (`--mode=export` of a configs/horses_fcn.py run on
  # the same training split), whose soft mask p(x) gives
  # y(0) = scale p(x) + (1 - scale) P(0). The FCN is held fixed. folds F > 0
  # cross-fits the training starts: params stacks F FCNs (dvn_jax.ensemble,
  # in fold order), FCN f trained with data.num_folds=F, held_out_fold=f;
  # training image i starts from FCN i mod F, which never saw it; evaluation
  # from their average (fcn_starts.crossfit_start_maps). Off: it lost 1.4 mean
  # IoU on val against y = 0 training (docs/horses.md).
  c.start = ml_collections.ConfigDict(dict(
      params='', scale=1.0, folds=0,
      model=ml_collections.ConfigDict(dict(name='fcn', skips=True))))
  c.oracle = 'iou'
  c.loss = 'cross_entropy'   # Eq. 11; 'l2' is the alternative

  # Chosen on val (docs/horses.md): batch 64 beat 32 in the GPU sweep, and
  # val mean IoU rose to 80.6 at 35000 steps (the last step scored).
  c.batch_size = 64
  c.num_train_steps = 35_000
  # The paper's "learning rate 0.01" does not name the optimizer. On val,
  # after 1200 steps: SGD (momentum 0.9) 0.01 -> 54.7 mean IoU, Adam 3e-4 ->
  # 66.2 (docs/horses.md).
  c.optimizer = ml_collections.ConfigDict(dict(
      name='adam', learning_rate=3e-4, momentum=0.9, schedule='constant',
      warmup_steps=0, weight_decay=0.0, grad_clip_norm=0.0))
  # An exponential moving average of the parameters (0 = off): training and
  # tuple generation use the live parameters; evaluation, export and
  # prediction the average; val scores of the live ones are logged too
  # (val_live_params/...) unless eval.score_live_params is False.
  c.ema_decay = 0.0

  # Training tuples (paper Sec. 3.3): batch fractions of each generator
  # (interpolated: ours, between inference outputs and y*; extrapolated: ours,
  # the same line past the inference outputs, away from y*; dvn_jax/tuples.py).
  c.tuples = ml_collections.ConfigDict(dict(
      mix=ml_collections.ConfigDict(dict(
          ground_truth=0.0, inference=0.5, stratified=0.0, adversarial=0.5,
          interpolated=0.0, extrapolated=0.0)),
      inference=ascent(num_steps=20, step_size=50.0),
      inference_pick='random',
      # Tuples per inference trajectory. 1 (each tuple from its own
      # trajectory) with batch 64 won the val sweep; 4 makes CPU steps 2.2x
      # faster at some cost in accuracy (docs/horses.md).
      inference_points=1,
      temperature=0.05,
      adversarial=ascent(num_steps=1, step_size=50.0),
      # 'ground_truth' (the paper's), 'zeros', 'inference' (an inference
      # output: with chains the chains' new points, at no extra ascent),
      # 'ground_truth_or_inference' / 'ground_truth_or_zeros' (a fair coin
      # per tuple), 'stratified' (tuples.adversarial_start_points).
      adversarial_start='ground_truth',
      # 'loss' ascends the regression loss (the paper's Sec. 3.3); 'value'
      # the predicted value, as the authors' multi-label code does.
      adversarial_objective='loss',
      # Persistent inference chains (tuples.advance_chains): every train
      # step advances each chain `chain_steps` ascent steps instead of
      # running a fresh 20-step trajectory.
      inference_chains=False, chain_steps=1,
      # Value-net updates on each generated batch of tuples (1 = the
      # paper's one; k > 1 reuses them: "data echoing", builders.tuple_echo).
      echo=1))

  # Mask averaging scored above joint inference on val (74.4 vs 73.9).
  # fcn: a fixed FCN at test (`params`, a `--mode=export` file of
  # configs/horses_fcn.py, or a dvn_jax.ensemble file of several); weight
  # w > 0 averages the soft masks with its: (1 - w) DVN + w FCN, then the
  # threshold (fcn_starts.mixed_with_fcn); start_scale s > 0 starts the test-time
  # ascent at y(0) = s p(x) (fcn_starts.make_eval_start_fn; training keeps
  # `start`); prior_weight lam > 0 makes each test-time ascent climb
  # v(x, y) + lam log p_FCN(y | x) (fcn_starts.make_eval_prior_fn). All ours;
  # docs/horses.md.
  c.eval = ml_collections.ConfigDict(dict(
      num_crops=36, combine='average', inference=ascent(30, 50.0),
      threshold=0.5, batch_size=1,   # images a batch: 36 crops suit a CPU
      score_live_params=True,   # with ema_decay > 0: also score the live ones
      # An ensemble file's value nets: 'outputs' (each its own ascent,
      # masks averaged) or 'values' (one ascent on their mean value; ours).
      ensemble='outputs',
      fcn=ml_collections.ConfigDict(dict(params='', weight=0.0,
                                         start_scale=0.0, prior_weight=0.0))))

  c.log_every_steps = 100
  c.eval_every_steps = 5000
  c.checkpoint_every_steps = 1000
  # Checkpoints kept: the last 3 plus the 1 with the best val score (every
  # eval step is saved; see README, Runs that survive).
  c.max_checkpoints_to_keep = 3
  c.keep_best_checkpoints = 1

  options = config_options(arg, ('smoke', 'two_stream', 'chains'))
  if 'chains' in options:
    # Chosen on val (docs/horses.md): 4 ascent steps per train step (each
    # trajectory gives 5 tuples) matched fresh trajectories at 2000 and 4000
    # steps; 1 step (20 tuples a trajectory) fell 3-4.5 points behind.
    c.tuples.inference_chains = True
    c.tuples.chain_steps = 4
    # A moving average of the parameters, decay 0.999 (docs/horses.md): on
    # val it beat the live parameters at every score of an 8000-step run,
    # by 0.8 to 2.6 mean IoU. So the live ones are no longer scored: that
    # halves the work of each evaluation.
    c.ema_decay = 0.999
    c.eval.score_live_params = False
  if 'two_stream' in options:
    # The image features computed once per inference run (paper Sec. 6;
    # models.TwoStreamValueNet; docs/horses.md): measured, not the default.
    c.model = ml_collections.ConfigDict(dict(
        name='two_stream_value_net', dropout_rate=0.25,
        mask_features=(32, 64, 64)))
  if 'smoke' in options:
    c.batch_size = 4
    c.num_train_steps = 6
    c.tuples.inference.num_steps = 2
    c.tuples.chain_steps = 1
    c.tuples.inference_points = 1
    c.eval.num_crops = 4
    c.eval.inference.num_steps = 2
    c.eval.batch_size = 40
    c.log_every_steps = 2
    c.eval_every_steps = 3
    c.checkpoint_every_steps = 3
  return c
