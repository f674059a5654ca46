"""TFDS builder `weizmann_horses_32x32` (needs no TensorFlow; array_record)."""

from dvn_jax.datasets.weizmann_horses_32x32.weizmann_horses_32x32_dataset_builder import Builder  # pylint: disable=line-too-long

__all__ = ["Builder"]
