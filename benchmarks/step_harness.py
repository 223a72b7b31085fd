"""The real jitted train step on synthetic batches, shared by the benchmark scripts here.

`bench_train_step.py`, `accelerator_check.py` and `memory_options.py` import it as a sibling
module (run them as `python benchmarks/NAME.py`, which puts this directory on the path).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import jax
import ml_collections


@dataclasses.dataclass
class Step:
  """A sharded train state, its jitted step and two fixed global batches."""
  spec: Any  # electra_jax.spec.run.RunSpec
  mesh: jax.sharding.Mesh
  rules: tuple
  step_fn: Any  # jax.jit(train_step), state donated
  state: Any
  batches: list  # two global batches of jax.Arrays
  host_batches: list  # the same two batches as host numpy arrays
  compile_s: float = 0.0

  def context(self):
    """Mesh + logical axis rules, as every call into the model needs."""
    from electra_jax.parallel import sharding  # noqa: PLC0415
    return sharding.mesh_scope(self.mesh, self.rules)

  def lower(self):
    with self.context():
      return self.step_fn.lower(self.state, self.batches[0])

  def run(self, num_steps: int) -> float:
    """Seconds per step over `num_steps`, after the state's previous steps (no warm-up here)."""
    with self.context():
      start = time.perf_counter()
      for i in range(num_steps):
        self.state, stats = self.step_fn(self.state, self.batches[i % 2])
      jax.block_until_ready(stats)
    return (time.perf_counter() - start) / num_steps


def build(config: ml_collections.ConfigDict, devices=None, compile_now: bool = True) -> Step:
  """The train step of `config` (data.source forced to synthetic), its state and batches."""
  from electra_jax.core import optimizer as optimizer_lib  # noqa: PLC0415
  from electra_jax.data import synthetic  # noqa: PLC0415
  from electra_jax.parallel import mesh as mesh_lib  # noqa: PLC0415
  from electra_jax.parallel import sharding  # noqa: PLC0415
  from electra_jax.pretraining import steps  # noqa: PLC0415
  from electra_jax.spec import run as run_spec  # noqa: PLC0415

  jax.config.update('jax_threefry_partitionable', True)
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.source = 'synthetic'
  devices = list(jax.devices() if devices is None else devices)
  spec = run_spec.load(config, num_devices=len(devices))
  mesh, rules = mesh_lib.make_mesh(spec.mesh, devices), spec.mesh.rules
  model = spec.objective.build_model(spec)
  tx = optimizer_lib.make_optimizer(config.train)
  max_predictions = spec.max_predictions
  init_fn = steps.make_init_fn(model, tx, spec.seq_length, max_predictions)
  rng = jax.random.key(0)
  iterator = synthetic.SyntheticIterator(config, max_predictions=max_predictions)
  host_batches = [next(iterator) for _ in range(2)]
  abstract, shardings = sharding.state_shardings(init_fn, rng, mesh, rules)
  batch_sharding = sharding.batch_sharding(mesh, rules)
  with sharding.mesh_scope(mesh, rules):
    batches = [{k: jax.make_array_from_process_local_data(batch_sharding, v)
                for k, v in b.items()} for b in host_batches]
    step_fn = jax.jit(functools.partial(steps.train_step, model=model, tx=tx, spec=spec,
                                        base_rng=rng),
                      in_shardings=(shardings, batch_sharding), out_shardings=(shardings, None),
                      donate_argnums=(0,))
    if not compile_now:
      return Step(spec, mesh, rules, step_fn, abstract, batches, host_batches)
    state = sharding.init_state(init_fn, rng, mesh, rules, shardings)
    start = time.perf_counter()
    step_fn = step_fn.lower(state, batches[0]).compile()
    compile_s = time.perf_counter() - start
  return Step(spec, mesh, rules, step_fn, state, batches, host_batches, compile_s)
