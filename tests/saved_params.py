"""Test helper: the joint params a pre-training workdir saved at `step`, read with plain orbax.

Independent of `electra_jax.convert`, so tests of the converter do not check it against itself.
"""

import jax
import numpy as np
import orbax.checkpoint as ocp

from electra_jax.interop import checkpoint as checkpoint_lib


def restore_params(workdir, step):
  with ocp.CheckpointManager(checkpoint_lib.checkpoint_dir(str(workdir))) as manager:
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  return jax.tree.map(np.asarray, state['state']['params'])
