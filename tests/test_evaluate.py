"""Evaluation metrics and batched prediction (dvn_jax/evaluate.py)."""

import numpy as np
import pytest

from dvn_jax import evaluate


def test_metrics_mean_and_global_iou():
  truth = np.zeros((2, 4, 4), bool)
  truth[0, :2] = True   # 8 pixels
  truth[1, 0, 0] = True  # 1 pixel
  pred = np.zeros_like(truth)
  pred[0, :1] = True    # 4 of 8: IoU 0.5
  pred[1, 0, :2] = True  # IoU 1/2
  metrics = evaluate.segmentation_metrics(pred, truth)
  assert metrics['mean_iou'] == pytest.approx(50.0)
  assert metrics['global_iou'] == pytest.approx(100.0 * 5 / 10)


def test_soft_metrics_are_relaxed_iou_and_equal_binary_ones_on_binary():
  rng = np.random.default_rng(0)
  truth = rng.random((5, 6, 6)) > 0.5
  pred = rng.random((5, 6, 6)) > 0.4
  soft = evaluate.soft_segmentation_metrics(pred.astype(float), truth)
  hard = evaluate.segmentation_metrics(pred, truth)
  assert soft == pytest.approx(hard)
  half = evaluate.soft_segmentation_metrics(np.full((1, 2), 0.5),
                                            np.array([[1.0, 0.0]]))
  assert half['mean_iou'] == pytest.approx(100 * 0.5 / 1.5)


def test_predict_in_batches_pads_and_trims():
  calls = []

  def predict(images):
    calls.append(images.shape)
    return images * 2
  out = evaluate.predict_in_batches(predict, np.arange(5.0)[:, None], 2)
  np.testing.assert_array_equal(out[:, 0], np.arange(5.0) * 2)
  assert calls == [(2, 1)] * 3
  # A split smaller than the batch is not padded up to it.
  calls.clear()
  out = evaluate.predict_in_batches(predict, np.arange(3.0)[:, None], 40)
  np.testing.assert_array_equal(out[:, 0], np.arange(3.0) * 2)
  assert calls == [(3, 1)]


def test_predict_in_batches_logs_progress_and_eta(caplog):
  caplog.set_level('INFO')
  five = np.arange(5.0)[:, None]
  out = evaluate.predict_in_batches(lambda images: images, five, 2,
                                    log_every_s=0.0)
  assert out.shape == (5, 1)
  lines = [r.getMessage() for r in caplog.records
           if r.getMessage().startswith('predicted')]
  # After the first batch (compilation) and before the last: 4 of 5 done.
  assert len(lines) == 1
  assert lines[0].startswith('predicted 4/5 examples (80%), ETA ')
  caplog.clear()
  evaluate.predict_in_batches(lambda images: images, five, 2)
  assert not [r for r in caplog.records if r.getMessage().startswith('predicted')]
