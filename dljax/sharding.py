"""One data-parallel mesh over every device of every process; batches sharded on 'data'.

The same code runs on 1 CPU, 8 fake CPU devices, many GPUs and many hosts: parameters are
replicated, each device takes `batch / device_count` examples, and XLA inserts the gradient
all-reduce. Multi-process runs join through `jax.distributed` before any of this is called.
"""

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def maybe_initialize_distributed(force: bool, coordinator_address: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None) -> None:
  """Joins a multi-process run when asked, or when SLURM / a TPU pod says this is one.

  With no explicit coordinator, `jax.distributed.initialize()` reads the coordinator, process
  count and id from the cluster environment; with one SLURM task there is nothing to join.
  """
  slurm_tasks = int(os.environ.get("SLURM_NTASKS", "1"))
  on_tpu_pod = "TPU_WORKER_HOSTNAMES" in os.environ or "MEGASCALE_COORDINATOR_ADDRESS" in os.environ
  if force or coordinator_address or slurm_tasks > 1 or on_tpu_pod:
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def make_mesh() -> Mesh:
  """A 1-D mesh named 'data' over all devices of all processes."""
  return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def data_sharded(mesh: Mesh, axis: int = 0) -> NamedSharding:
  """The batch axis (the leading one, or `axis`) split over the 'data' axis, other axes whole."""
  return NamedSharding(mesh, PartitionSpec(*[None] * axis, DATA_AXIS))


def put_replicated(tree, mesh: Mesh):
  """Places arrays (or random keys), identical on every process, on all devices as global
  replicated arrays."""
  sharding = replicated(mesh)

  def put(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))

  return jax.tree.map(put, tree)
