"""The tiny discriminator trained ALONE against a fixed replacement distribution (research tool).

Issue 11's question was why the quick start's discriminator stayed at the base rate. This script
takes the generator out of the loop: it masks batches of the real `tiny` pipeline, replaces the
masked tokens by unigram samples (the corpus's token frequencies, specials excluded), trains the
`tiny` discriminator on replaced-token detection with the project's optimizer, and prints the
eval AUC over real tokens every `--eval_every` steps. `--shortcut_steps=N` first replaces with
UNIFORM samples for N steps, which token identity alone can detect, as an early generator's are.

  python benchmarks/disc_alone.py --steps=600                        # unigram replacements
  python benchmarks/disc_alone.py --steps=600 --shortcut_steps=150   # identity shortcut first

It prints figures and asserts nothing (the research log in WORKSPACE.md has the results).
"""

import os
import time

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from electra_jax import startup
from electra_jax.core import model as model_lib
from electra_jax.core import optimizer as optimizer_lib
from electra_jax.data import pretraining
from electra_jax.spec import run as run_spec

_STEPS = flags.DEFINE_integer('steps', 600, 'Training steps (the schedule ends here).')
_LR = flags.DEFINE_float('learning_rate', 1e-3, 'Peak learning rate.')
_WARMUP = flags.DEFINE_integer('warmup_steps', 100, 'Warm-up steps.')
_EVAL_EVERY = flags.DEFINE_integer('eval_every', 100, 'Steps between evaluations.')
_SHORTCUT = flags.DEFINE_integer('shortcut_steps', 0, 'Uniform replacements for the first N '
                                 'steps (detectable from token identity), unigram after.')
_CACHE = flags.DEFINE_string('cache', '/tmp/electra_jax_disc_alone.npz', 'Where the masked '
                             'batches of the tiny pipeline are kept between runs.')

_BATCH = 32
_EVAL_BATCHES = 10
_NUM_SPECIALS = 5  # [PAD], [UNK], [CLS], [SEP], [MASK] of the built-in tokenizer: never sampled


def _batches(config) -> dict[str, np.ndarray]:
  """Train (one per step) and eval batches of the tiny pipeline, cached as numpy."""
  if os.path.exists(_CACHE.value):
    with np.load(_CACHE.value) as stored:
      if len(stored['train_input_ids']) >= _STEPS.value * _BATCH:
        return dict(stored)
  arrays = {}
  for split, count in (('train', _STEPS.value), ('eval', _EVAL_BATCHES)):
    batches = pretraining.make_dataset(run_spec.load(config), split).as_numpy_iterator()
    taken = [next(batches) for _ in range(count)]
    for key in ('input_ids', 'attention_mask', 'token_type_ids', 'masked_lm_positions',
                'masked_lm_weights'):
      arrays[f'{split}_{key}'] = np.concatenate([b[key] for b in taken])
  np.savez(_CACHE.value, **arrays)
  return arrays


def _replace(arrays, split, rows, sample) -> tuple[np.ndarray, np.ndarray]:
  """(corrupted ids, labels): the used mask slots of `rows` filled by `sample(shape)`."""
  ids = arrays[f'{split}_input_ids'][rows].copy()
  positions = arrays[f'{split}_masked_lm_positions'][rows]
  used = arrays[f'{split}_masked_lm_weights'][rows] > 0
  index = np.arange(len(ids))[:, None]
  ids[index, positions] = np.where(used, sample(positions.shape), ids[index, positions])
  return ids, (ids != arrays[f'{split}_input_ids'][rows]).astype(np.float32)


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
  """Mann-Whitney AUC (ties broken by order; scores are continuous)."""
  ranks = np.empty(len(scores))
  ranks[np.argsort(scores, kind='stable')] = np.arange(1, len(scores) + 1)
  positive = labels == 1
  n_pos, n_neg = positive.sum(), (~positive).sum()
  return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main(argv):
  startup.no_arguments(argv)
  config = startup.load_config_file('tiny')
  config.train.batch_size = _BATCH
  config.train.num_steps, config.train.warmup_steps = _STEPS.value, _WARMUP.value
  config.train.learning_rate = _LR.value
  arrays = _batches(config)
  vocab = config.model.vocab_size
  real = arrays['train_attention_mask'] > 0
  counts = np.bincount(arrays['train_input_ids'][real], minlength=vocab).astype(np.float64)
  counts[:_NUM_SPECIALS] = 0
  rng = np.random.default_rng(0)
  unigram = lambda shape: rng.choice(vocab, size=shape, p=counts / counts.sum())
  uniform = lambda shape: rng.integers(_NUM_SPECIALS, vocab, size=shape)

  model = model_lib.Discriminator(config.model)
  zeros = jnp.zeros((_BATCH, config.data.max_seq_length), jnp.int32)
  params = nn.unbox(model.init(jax.random.key(config.seed), zeros, zeros, zeros + 1)['params'])
  tx = optimizer_lib.make_optimizer(config.train,
                                    optimizer_lib.learning_rate_schedule(config.train))
  opt_state = tx.init(params)

  def loss_fn(params, ids, token_types, mask, labels):
    logits = model.apply({'params': params}, ids, token_types, mask)
    losses = optax.sigmoid_binary_cross_entropy(logits, labels)
    return jnp.sum(losses * mask) / jnp.sum(mask)

  @jax.jit
  def train_step(params, opt_state, ids, token_types, mask, labels):
    loss, grads = jax.value_and_grad(loss_fn)(params, ids, token_types, mask, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  logits_fn = jax.jit(lambda p, ids, tt, mask: model.apply({'params': p}, ids, tt, mask))
  eval_sets = [(slice(i * _BATCH, (i + 1) * _BATCH),
                *_replace(arrays, 'eval', slice(i * _BATCH, (i + 1) * _BATCH), unigram))
               for i in range(_EVAL_BATCHES)]
  start = time.time()
  for step in range(1, _STEPS.value + 1):
    rows = slice((step - 1) * _BATCH, step * _BATCH)
    ids, labels = _replace(arrays, 'train', rows,
                           uniform if step <= _SHORTCUT.value else unigram)
    params, opt_state, loss = train_step(params, opt_state, ids,
                                         arrays['train_token_type_ids'][rows],
                                         arrays['train_attention_mask'][rows], labels)
    if step % _EVAL_EVERY.value == 0:
      scores, truths = [], []
      for rows, eval_ids, eval_labels in eval_sets:
        mask = arrays['eval_attention_mask'][rows]
        logits = np.asarray(logits_fn(params, eval_ids, arrays['eval_token_type_ids'][rows], mask))
        real = mask > 0
        real[:, 0] = False  # [CLS]
        scores.append(logits[real])
        truths.append(eval_labels[real])
      auc = _auc(np.concatenate(scores), np.concatenate(truths))
      print(f'step {step} | train loss {float(loss):.4f} | eval AUC {auc:.3f} | '
            f'{time.time() - start:.0f} s', flush=True)


if __name__ == '__main__':
  app.run(main)
