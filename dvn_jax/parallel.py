"""Data parallelism over every device of every host: a 1-D mesh, no pmap.

The datasets of the paper are tiny, so every device holds all of them
(replicated, like the parameters and optimizer state); a batch is a global
array of example indices sharded over the 'data' axis, and `jax.jit` with
`NamedSharding`s partitions the train step by batch: each device gathers,
crops and runs inference on its own examples, and the gradient mean becomes
an all-reduce. Every process computes the same global indices (they are a
function of the step) and hands over its own devices' shards, so nothing is
sent between hosts but the all-reduce.

Multi-process runs (one process per host or per GPU) call
`initialize_distributed` first; `jax.distributed.initialize` finds SLURM,
Open MPI and Cloud TPU settings by itself, or takes an explicit coordinator.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from dvn_jax import input_pipeline
from dvn_jax.errors import ConfigError

DATA_AXIS = 'data'
# Environment variables that mean "launched as one of several processes".
_CLUSTER_ENV = {'SLURM_NTASKS': 'SLURM', 'OMPI_COMM_WORLD_SIZE': 'Open MPI',
                'PMI_SIZE': 'MPI'}


def launched_multi_process() -> str | None:
  """The cluster environment that started several processes, if any."""
  for variable, name in _CLUSTER_ENV.items():
    if int(os.environ.get(variable, '1') or 1) > 1:
      return name
  hosts = os.environ.get('TPU_WORKER_HOSTNAMES', '')
  if len(hosts.split(',')) > 1:
    return 'Cloud TPU'
  return None


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
  """Calls `jax.distributed.initialize` when this is a multi-process run.

  With an explicit coordinator (e.g. two local processes on 127.0.0.1) the
  three arguments are passed on; otherwise JAX detects SLURM, Open MPI or
  Cloud TPU. Returns whether it initialised. Must run before any other JAX
  call that touches devices.
  """
  if coordinator_address:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True
  cluster = launched_multi_process()
  if cluster is None:
    return False
  logging.info('Multi-process run under %s: initialising jax.distributed',
               cluster)
  jax.distributed.initialize()
  return True


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D 'data' mesh over the first `num_devices` devices (0 = all)."""
  devices = jax.devices()
  if num_devices < 0 or num_devices > len(devices):
    raise ConfigError(f'num_devices must be in 0..{len(devices)} (0 = all '
                      f'{len(devices)} devices), got {num_devices}')
  if num_devices and jax.process_count() > 1 and num_devices != len(devices):
    raise ConfigError('num_devices must be 0 (all) in a multi-process run')
  devices = devices[:num_devices or len(devices)]
  # Auto axes: shardings are pinned at the jit boundary and XLA propagates
  # them inside (the gathers of the batch need no annotations).
  return jax.make_mesh((len(devices),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the 'data' axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def steps_batch_sharded(mesh: Mesh) -> NamedSharding:
  """Arrays (steps, batch, ...): every step's batch split over the devices."""
  return NamedSharding(mesh, P(None, DATA_AXIS))


def check_divisible(size: int, mesh: Mesh, field: str) -> None:
  if size % mesh.size:
    raise ConfigError(f'{field} = {size} must be a multiple of the '
                      f'{mesh.size} devices it is split over; set it to '
                      f'{-(-size // mesh.size) * mesh.size}')


def put(array: Any, sharding: NamedSharding) -> jax.Array:
  """A host array (the same on every process) as a global jax.Array.

  Each process supplies the shards of its own devices.
  """
  array = np.asarray(array)
  return jax.make_array_from_callback(array.shape, sharding,
                                      lambda index: array[index])


def put_tree(tree: Any, sharding: NamedSharding) -> Any:
  return jax.tree.map(lambda leaf: put(jax.device_get(leaf), sharding), tree)


def to_host(array: jax.Array) -> np.ndarray:
  """The full value of a global array on every process."""
  if array.is_fully_addressable or array.is_fully_replicated:
    return np.asarray(array)
  return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def sharded_batch_fn(fn: Callable[..., jax.Array], mesh: Mesh
                     ) -> Callable[[Any, np.ndarray], np.ndarray]:
  """fn(params, batch) jitted with the batch split over the mesh.

  The returned function takes replicated params and a host batch, pads the
  batch to a multiple of the device count (copies of its last row), and
  returns the host array of the real rows.
  """
  sharding = batch_sharded(mesh)
  jitted = jax.jit(fn, in_shardings=(replicated(mesh), sharding),
                   out_shardings=sharding)

  def call(params, batch):
    padded = input_pipeline.pad_to_multiple(np.asarray(batch), mesh.size)
    return to_host(jitted(params, put(padded, sharding)))[:len(batch)]

  return call
