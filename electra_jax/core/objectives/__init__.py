"""What is pre-trained (`config.electra.objective`): one interface, one registry.

Each objective is one module implementing `base.Objective`; the registry below is the only place
that knows their names, and the run spec (`spec.run.load`) the only reader of the config's,
through `named`. Adding an objective is one module and one line in `_OBJECTIVES` (WORKSPACE.md,
"Objectives").

  'electra'         replaced-token detection on every token (the default; the original's).
  'mlm'             BERT: a masked LM of the discriminator's size, no generator, 80/10/10.
  'electra_15'      ELECTRA with the discriminator's loss on the masked positions only.
  'replace_mlm'     a masked LM on the generator-corrupted input, at the masked positions.
  'all_tokens_mlm'  a masked LM of every token of the corrupted input, with a copy gate.

The joint parameter tree keeps `model.ElectraPretrainer`'s names for all of them:
`discriminator` is always the MAIN network (the one kept and fine-tuned), `generator` the small
generator when there is one.
"""

from __future__ import annotations

from electra_jax.core import model as model_lib
from electra_jax.core.objectives import electra
from electra_jax.core.objectives import mlm
from electra_jax.core.objectives import replaced_mlm
from electra_jax.core.objectives.base import Objective
from electra_jax.errors import UserError

_OBJECTIVES = (electra.ELECTRA, mlm.MLM, electra.ELECTRA_15, replaced_mlm.REPLACE_MLM,
               replaced_mlm.ALL_TOKENS_MLM)
REGISTRY: dict[str, Objective] = {o.name: o for o in _OBJECTIVES}
NAMES = tuple(REGISTRY)
DEFAULT = 'electra'  # also what configs saved before the switch existed trained


def named(name: str, field: str = 'config.electra.objective') -> Objective:
  """The objective called `name`; a UserError naming `field` and the choices otherwise."""
  if name not in REGISTRY:
    raise UserError(f'{field}={name!r}: use one of {", ".join(NAMES)}.')
  return REGISTRY[name]


def of_masked_lm_export(has_generator: bool) -> Objective:
  """What a Hugging Face masked-LM export (DST/masked_lm [+ DST/generator]) is read as. The
  export does not name the objective that wrote it; the one with a plain masked-LM main network
  (and a generator when the export has one) reads it as written: 'mlm' or 'replace_mlm'
  ('all_tokens_mlm' exports without its copy gate, so it reads as 'replace_mlm')."""
  return next(o for o in _OBJECTIVES if o.main_export == 'masked_lm'
              and o.main_network is model_lib.Generator and o.has_generator == has_generator)
