"""Evaluation metrics (numpy, on the host) and evaluation over a split."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import jax
import numpy as np
from absl import logging

from dvn_jax import input_pipeline
from dvn_jax import writers


HEADLINE_METRICS = ('superpixel_accuracy', 'mean_iou', 'f1')


def headline_metric(metrics: dict[str, float]) -> str:
  """The key of an evaluation's headline score (higher is better): the one
  that picks the best checkpoint and sweep variant."""
  for name in HEADLINE_METRICS:
    if name in metrics:
      return name
  raise KeyError(f'no headline metric among {sorted(metrics)}')


def per_image_iou(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
  """Discrete IoU of binary masks (N, ...) -> (N,); empty vs empty is 1."""
  pred = pred.reshape(len(pred), -1).astype(bool)
  truth = truth.reshape(len(truth), -1).astype(bool)
  intersection = (pred & truth).sum(axis=1)
  union = (pred | truth).sum(axis=1)
  return np.where(union == 0, 1.0, intersection / np.maximum(union, 1))


def segmentation_metrics(pred: np.ndarray, truth: np.ndarray
                         ) -> dict[str, float]:
  """Mean per-image IoU and global IoU (sum of intersections / unions), in %.

  pred and truth are binary masks (N, H, W) or (N, H, W, 1).
  """
  pred = pred.reshape(len(pred), -1).astype(bool)
  truth = truth.reshape(len(truth), -1).astype(bool)
  global_union = (pred | truth).sum()
  global_iou = (pred & truth).sum() / global_union if global_union else 1.0
  return {'mean_iou': 100.0 * float(per_image_iou(pred, truth).mean()),
          'global_iou': 100.0 * float(global_iou)}


def soft_segmentation_metrics(soft: np.ndarray, truth: np.ndarray
                              ) -> dict[str, float]:
  """Mean and global IoU of non-binary masks in [0, 1], in %.

  Intersection and union are the relaxed ones of Eq. 9, 10 (sums of minima
  and maxima); on binary masks this equals `segmentation_metrics`.
  """
  soft = soft.reshape(len(soft), -1).astype(np.float64)
  truth = truth.reshape(len(truth), -1).astype(np.float64)
  intersection = np.minimum(soft, truth).sum(axis=1)
  union = np.maximum(soft, truth).sum(axis=1)
  per_image = np.where(union == 0, 1.0, intersection / np.maximum(union, 1e-12))
  global_iou = intersection.sum() / union.sum() if union.sum() else 1.0
  return {'mean_iou': 100.0 * float(per_image.mean()),
          'global_iou': 100.0 * float(global_iou)}


def predict_in_batches(predict_fn: Callable[[np.ndarray], np.ndarray],
                       images: np.ndarray, batch_size: int,
                       log_every_s: float = 30.0) -> np.ndarray:
  """Runs predict_fn over fixed-size batches (the last one padded).

  Fixed batch shapes mean predict_fn compiles once, whatever the split size;
  a split smaller than batch_size is one batch of its own size (no padding).
  Every `log_every_s` seconds it logs how many examples are done and the
  ETA, timed from the end of the first batch (which compiles).
  """
  batch_size = max(1, min(batch_size, len(images)))
  padded = input_pipeline.pad_to_multiple(images, batch_size)
  outputs = []
  first_done = last_log = None
  for start in range(0, len(padded), batch_size):
    outputs.append(np.asarray(predict_fn(padded[start:start + batch_size])))
    now = time.monotonic()
    done = min(start + batch_size, len(images))
    if first_done is None:
      first_done = last_log = now
    elif now - last_log >= log_every_s and done < len(images):
      last_log = now
      seconds_each = (now - first_done) / (done - batch_size)
      logging.info('predicted %d/%d examples (%.0f%%), ETA %s', done,
                   len(images), 100.0 * done / len(images),
                   writers.format_seconds(seconds_each
                                          * (len(images) - done)))
  return np.concatenate(outputs)[:len(images)]


def evaluate_segmentation(predict_fn: Callable[[np.ndarray], np.ndarray],
                          images: np.ndarray, masks: np.ndarray,
                          batch_size: int, threshold: float = 0.5
                          ) -> dict[str, float]:
  """Mean and global IoU of thresholded soft masks predicted for a split."""
  soft = predict_in_batches(predict_fn, images, batch_size)
  return segmentation_metrics(soft[..., 0] >= threshold, masks)


def per_example_f1(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
  """F1 of binary label vectors (N, L) -> (N,).

  An example with no true and no predicted labels scores 1 (a perfect
  "nothing"), as the oracle does (oracles.py); Bibtex and Bookmarks have at
  least one label per example, so there it never arises.
  """
  pred = pred.astype(bool)
  truth = truth.astype(bool)
  tp = (pred & truth).sum(axis=1)
  total = pred.sum(axis=1) + truth.sum(axis=1)
  return np.where(total == 0, 1.0, 2.0 * tp / np.maximum(total, 1))


def multilabel_metrics(pred: np.ndarray, truth: np.ndarray
                       ) -> dict[str, float]:
  """Example-averaged F1 (the paper's Table 1 metric), precision, recall, %."""
  pred = pred.astype(bool)
  truth = truth.astype(bool)
  tp = (pred & truth).sum(axis=1)
  precision = np.where(pred.sum(1) == 0, truth.sum(1) == 0,
                       tp / np.maximum(pred.sum(1), 1))
  recall = np.where(truth.sum(1) == 0, pred.sum(1) == 0,
                    tp / np.maximum(truth.sum(1), 1))
  return {'f1': 100.0 * float(per_example_f1(pred, truth).mean()),
          'precision': 100.0 * float(precision.mean()),
          'recall': 100.0 * float(recall.mean())}


def evaluate_multilabel(predict_fn: Callable[[np.ndarray], np.ndarray],
                        features: np.ndarray, labels: np.ndarray,
                        batch_size: int, threshold: float = 0.5
                        ) -> dict[str, float]:
  """Example-averaged F1 of thresholded label scores predicted for a split."""
  scores = predict_in_batches(predict_fn, features, batch_size)
  return multilabel_metrics(scores >= threshold, labels)


# ------------------------------------------------- K-class segmentation ----


def pixel_accuracy(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
  """Fraction of pixels whose class is right, per image: (N, ...) -> (N,)."""
  pred = pred.reshape(len(pred), -1)
  truth = truth.reshape(len(truth), -1)
  return (pred == truth).mean(axis=1)


def superpixel_votes(pred: np.ndarray, superpixels: np.ndarray,
                     num_superpixels: int, num_classes: int) -> np.ndarray:
  """Pixel votes (S, K): how many pixels of superpixel s are predicted k.

  pred and superpixels are (H, W) int maps of one image, superpixel ids in
  0..S-1.
  """
  index = superpixels.astype(np.int64).ravel() * num_classes + pred.ravel()
  votes = np.bincount(index, minlength=num_superpixels * num_classes)
  return votes.reshape(num_superpixels, num_classes)


def superpixel_accuracy(preds: np.ndarray, superpixels: np.ndarray,
                        superpixel_labels: np.ndarray, num_classes: int
                        ) -> dict[str, float]:
  """Superpixel accuracy of full-size pixel labels (Tsogkas et al. 2015), %.

  Each superpixel takes the class most of its pixels are predicted as (ties:
  the lowest class index) and is scored against its ground-truth label.
  Superpixels with no pixel in the map are left out.

  Args:
    preds: (N, H, W) predicted classes.
    superpixels: (N, H, W) superpixel ids.
    superpixel_labels: (N, S_max) ground-truth class per superpixel, padded
      with -1 past each image's number of superpixels.
    num_classes: K.

  Returns:
    'superpixel_accuracy': correct superpixels / all superpixels of the
    split (pooled, the headline number); 'mean_superpixel_accuracy': the
    mean over images of each image's accuracy.
  """
  correct, total, per_image = 0, 0, []
  for pred, sp, labels in zip(preds, superpixels, superpixel_labels):
    labels = labels[labels >= 0]
    votes = superpixel_votes(pred, sp, len(labels), num_classes)
    present = votes.sum(axis=1) > 0
    right = (votes.argmax(axis=1) == labels) & present
    correct += int(right.sum())
    total += int(present.sum())
    per_image.append(right.sum() / max(present.sum(), 1))
  return {'superpixel_accuracy': 100.0 * correct / max(total, 1),
          'mean_superpixel_accuracy': 100.0 * float(np.mean(per_image))}


@functools.partial(jax.jit, static_argnums=1)
def _resize_bilinear(soft: np.ndarray, size: tuple[int, int]) -> jax.Array:
  return jax.image.resize(soft, soft.shape[:1] + size + soft.shape[-1:],
                          method='bilinear')


def full_size_classes(soft: np.ndarray, size: tuple[int, int],
                      batch_size: int = 32) -> np.ndarray:
  """Class maps (N, H, W) from soft masks (N, h, w, K): the class
  probabilities are resized bilinearly to (H, W), then argmax per pixel."""
  out = []
  for i in range(0, len(soft), batch_size):
    full = _resize_bilinear(np.asarray(soft[i:i + batch_size], np.float32),
                            tuple(size))
    out.append(np.asarray(full.argmax(axis=-1), np.uint8))
  return np.concatenate(out)


def evaluate_multiclass(predict_fn: Callable[[np.ndarray], np.ndarray],
                        split, batch_size: int) -> dict[str, float]:
  """Superpixel and pixel accuracy (%) of K-class masks predicted for a split.

  `split` has images (N, h, w, 3), masks (N, h, w) class ids at the
  network's size, and full-size superpixels (N, H, W) and
  superpixel_labels (N, S_max). The soft masks are scored at (h, w) for
  pixel accuracy and, resized to (H, W), for superpixel accuracy.
  """
  soft = predict_in_batches(predict_fn, split.images, batch_size)
  num_classes = soft.shape[-1]
  metrics = superpixel_accuracy(
      full_size_classes(soft, split.superpixels.shape[1:3]),
      split.superpixels, split.superpixel_labels, num_classes)
  metrics['pixel_accuracy'] = 100.0 * float(
      pixel_accuracy(soft.argmax(axis=-1), split.masks).mean())
  return metrics
