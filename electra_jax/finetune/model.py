"""Task models for fine-tuning: the pre-trained discriminator's encoder plus a small task head.

A task model's parameters are the discriminator's (`embeddings/`, `embeddings_project/`,
`encoder/`) without its replaced-token head (`discriminator_predictions/`), plus one head:

  classifier/{kernel [H, num_labels], bias}                   GLUE, the original's (default)
  classifier/{dense [H, H], out_proj [H, num_labels]}         GLUE, classifier_head='hf'
  squad_head/{start [H, 1], end_hidden [2H, 512], end [512, 1],
              answerable_hidden [2H, 512], answerable [512, 1]}   SQuAD, the original's (joint)
  span_head/{kernel [H, 2], bias [2]}                          SQuAD, qa_head='independent'
  answerability_head/{dense [H, H], out_proj [H, 1]}          ... and its v2.0 classifier

The original's heads are `tf.layers.dense` layers without `kernel_initializer`, so they are
Glorot-uniform (`model.GLOROT_UNIFORM`); the Hugging Face-style heads keep the HF port's
truncated-normal init.

`HEAD_NAMES` lists the head subtrees, which layer-wise learning-rate decay puts at the top depth.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from electra_jax.core import model as model_lib

# Top-level parameter subtrees that belong to the pre-trained encoder (everything else is a head).
ENCODER_NAMES = ('embeddings', 'embeddings_project', 'encoder')
HEAD_NAMES = ('classifier', 'squad_head', 'span_head', 'answerability_head')
HEADS = ('classification', 'span')
# `task.classifier_head`: 'electra' = the original's h[CLS] -> dropout -> linear
# (classification_tasks.py); 'hf' = ElectraForSequenceClassification's head, for export.
CLASSIFIER_HEADS = ('electra', 'hf')
# `task.qa_head`: 'joint' = the original's XLNet-style head (qa_tasks.py: joint_prediction with
# a beam, answerable classifier on [CLS] + start-weighted features); 'independent' = a BERT/HF
# style linear start/end head with an HF-style [CLS] classifier.
QA_HEADS = ('joint', 'independent')
# Width of the original's end-logit and answerability hidden layers (qa_tasks.py: dense 512).
QA_HIDDEN = 512
# The original pushes masked logits down by 1000 (not -inf): `logits += 1000 * (mask - 1)`.
QA_MASK_PENALTY = 1000.0


def first_token_linear(config, hidden, num_outputs: int, name: str, deterministic: bool):
  """The original's classifier (`ClassificationTask` / `RegressionTask.get_prediction_module`),
  called inside a compact module: first token (`get_pooled_output` is `sequence_output[:, 0]`,
  no pooler) -> dropout -> dense(H->num_outputs) named `name`, Glorot-uniform.

  Input [batch, length, H]; returns float32 [batch, num_outputs].
  """
  first = model_lib.Dropout(config.hidden_dropout_prob)(hidden[:, 0, :],
                                                       deterministic=deterministic)
  logits = model_lib.Dense(config, num_outputs, ('embed', None),
                           kernel_init=model_lib.GLOROT_UNIFORM, name=name)(first)
  return logits.astype(jnp.float32)


class FirstTokenHead(nn.Module):
  """The HF port's `ElectraClassificationHead` on the first ([CLS]) token.

  first token -> dropout -> dense(H->H) + GELU -> dropout -> dense(H->num_outputs).
  Input [batch, length, H]; returns float32 logits [batch, num_outputs].
  """
  config: ml_collections.ConfigDict
  num_outputs: int

  @nn.compact
  def __call__(self, hidden, deterministic: bool):
    c = self.config
    dropout = lambda x: model_lib.Dropout(c.hidden_dropout_prob)(x, deterministic=deterministic)
    first = dropout(hidden[:, 0, :])
    inner = model_lib.gelu(model_lib.Dense(c, c.hidden_size, ('embed', 'mlp'), name='dense')(first))
    logits = model_lib.Dense(c, self.num_outputs, ('mlp', None), name='out_proj')(dropout(inner))
    return logits.astype(jnp.float32)


class _PairDense(nn.Module):
  """dense(concat(a, b)) with one [2H, features] kernel, computed as a @ W[:H] + b @ W[H:].

  Mathematically the original's dense on the concatenation; split, so that the beam's
  [batch, beam, length, 2H] concatenation is never built. `a` and `b` broadcast against each
  other (e.g. [batch, beam, 1, H] and [batch, 1, length, H]).
  """
  config: ml_collections.ConfigDict
  features: int

  @nn.compact
  def __call__(self, a, b):
    c = self.config
    width = a.shape[-1]
    kernel = self.param('kernel', nn.with_logical_partitioning(model_lib.GLOROT_UNIFORM,
                                                               (None, 'mlp')),
                        (2 * width, self.features), jnp.float32)
    bias = self.param('bias', nn.with_logical_partitioning(nn.initializers.zeros_init(),
                                                           ('mlp',)),
                      (self.features,), jnp.float32)
    dtype = model_lib.compute_dtype(c.dtype)
    kernel = kernel.astype(dtype)
    return a.astype(dtype) @ kernel[:width] + b.astype(dtype) @ kernel[width:] + bias.astype(dtype)


class JointSpanHead(nn.Module):
  """The original's SQuAD head (`QATask.get_prediction_module` in `finetune/qa/qa_tasks.py`,
  with its defaults joint_prediction, answerable_classifier, answerable_uses_start_logits).

  - Answer mask: context tokens (segment 1 within the attention mask, so the final [SEP] too)
    plus [CLS]; the question, its [SEP] and padding get `-1000` on their logits.
  - Start logits: dense(H->1).
  - End logits, conditioned on a start: dense(concat(h[start], h)) -> 512, GELU -> dense(1).
    Training conditions on the gold start; inference keeps the `beam_size` best starts (by
    log-probability) and for each the `beam_size` best ends.
  - Answerability ("impossible") logit: dense(concat(h[CLS], sum softmax(start) * h)) -> 512,
    GELU -> dense(1); alone it is the v2.0 null score.
  Every dense is Glorot-uniform, as TF's default.
  """
  config: ml_collections.ConfigDict
  beam_size: int = 20
  answerability: bool = True

  @nn.compact
  def __call__(self, hidden, token_type_ids, attention_mask, start_positions=None):
    """hidden [batch, length, H]. Returns float32 outputs (see `TaskModel`)."""
    c = self.config
    length = hidden.shape[1]
    dense = lambda features, axes, name: model_lib.Dense(
        c, features, axes, kernel_init=model_lib.GLOROT_UNIFORM, name=name)
    answer_mask = (attention_mask.astype(jnp.float32) * token_type_ids.astype(jnp.float32)
                   + jax.nn.one_hot(0, length))  # [batch, length]
    penalty = QA_MASK_PENALTY * (answer_mask - 1.0)
    start_logits = dense(1, ('embed', None), 'start')(hidden)[..., 0].astype(jnp.float32)
    start_logits = start_logits + penalty
    end_hidden = _PairDense(c, QA_HIDDEN, name='end_hidden')
    end_dense = dense(1, ('mlp', None), 'end')
    outputs = {}
    if start_positions is not None:  # training: the gold start's representation
      start_features = jnp.take_along_axis(hidden, start_positions[:, None, None], axis=1)
      end_inner = model_lib.gelu(end_hidden(start_features, hidden))  # [batch, length, 512]
      outputs['start_logits'] = start_logits
      outputs['end_logits'] = end_dense(end_inner)[..., 0].astype(jnp.float32) + penalty
    else:  # inference: a beam over starts, then over ends
      k = min(self.beam_size, length)
      start_top_log_probs, start_top_index = jax.lax.top_k(
          jax.nn.log_softmax(start_logits, axis=-1), k)  # [batch, k]
      start_features = jnp.take_along_axis(hidden, start_top_index[..., None], axis=1)
      end_inner = model_lib.gelu(end_hidden(start_features[:, :, None, :], hidden[:, None, :, :]))
      end_logits = (end_dense(end_inner)[..., 0].astype(jnp.float32)
                    + penalty[:, None, :])  # [batch, k, length]
      end_top_log_probs, end_top_index = jax.lax.top_k(
          jax.nn.log_softmax(end_logits, axis=-1), k)  # [batch, k, k]
      outputs.update(start_top_log_probs=start_top_log_probs, start_top_index=start_top_index,
                     end_top_log_probs=end_top_log_probs, end_top_index=end_top_index)
    if self.answerability:
      start_probs = jax.nn.softmax(start_logits, axis=-1)
      start_summary = jnp.einsum('bl,blh->bh', start_probs.astype(hidden.dtype), hidden)
      features = jnp.concatenate([hidden[:, 0], start_summary], axis=-1)  # [batch, 2H]
      inner = model_lib.gelu(dense(QA_HIDDEN, ('embed', 'mlp'), 'answerable_hidden')(features))
      outputs['answerable_logits'] = dense(1, ('mlp', None), 'answerable')(inner)[:, 0].astype(
          jnp.float32)
    return outputs


class TaskModel(nn.Module):
  """Encoder + task head.

  Attributes:
    config: the encoder's model config (`config.model` schema).
    head: 'classification' (GLUE) or 'span' (SQuAD).
    num_labels: classification outputs; 1 means regression (STS-B).
    classifier_head: 'electra' (the original's linear head) or 'hf' (`CLASSIFIER_HEADS`).
    answerability: span heads only: add the no-answer ("impossible") classifier.
    qa_head: span head only: 'joint' (the original's, `JointSpanHead`) or 'independent'.
    beam_size: joint span head only: start and end candidates kept at inference.
  """
  config: ml_collections.ConfigDict
  head: str
  num_labels: int = 2
  answerability: bool = False
  classifier_head: str = 'electra'
  qa_head: str = 'joint'
  beam_size: int = 20

  @nn.compact
  def __call__(self, input_ids, token_type_ids, attention_mask, deterministic: bool = True,
               start_positions=None):
    """Inputs int32 [batch, length]. Returns a dict of float32 outputs:

    classification: {'logits': [batch, num_labels]}.
    span, joint: in training (`start_positions` [batch], the gold starts, given)
      {'start_logits', 'end_logits': [batch, length]}, the end conditioned on the gold start;
      at inference {'start_top_log_probs', 'start_top_index': [batch, beam],
      'end_top_log_probs', 'end_top_index': [batch, beam, beam]}. Non-answer positions sit
      1000 below.
    span, independent: {'start_logits', 'end_logits': [batch, length]} (padding at -1e9).
    Both span heads, with `answerability`: {'answerable_logits': [batch]}, the logit that
      there is NO answer.
    """
    c = self.config
    if self.head not in HEADS:
      raise ValueError(f'head={self.head!r}; use one of {HEADS}.')
    if self.classifier_head not in CLASSIFIER_HEADS:
      raise ValueError(f'task.classifier_head={self.classifier_head!r}; use one of '
                       f'{CLASSIFIER_HEADS}.')
    if self.qa_head not in QA_HEADS:
      raise ValueError(f'task.qa_head={self.qa_head!r}; use one of {QA_HEADS}.')
    tables = model_lib.EmbeddingTables(c, name='embeddings')()
    hidden = model_lib.encode(self, c, tables, input_ids, token_type_ids, attention_mask,
                              deterministic)
    if self.head == 'classification':
      if self.classifier_head == 'electra':
        return {'logits': first_token_linear(c, hidden, self.num_labels, 'classifier',
                                             deterministic)}
      return {'logits': FirstTokenHead(c, self.num_labels, name='classifier')(hidden,
                                                                              deterministic)}

    if self.qa_head == 'joint':
      return JointSpanHead(c, self.beam_size, self.answerability, name='squad_head')(
          hidden, token_type_ids, attention_mask, start_positions)
    span_logits = model_lib.Dense(c, 2, ('embed', None), name='span_head')(hidden)
    span_logits = span_logits.astype(jnp.float32)
    # Padding can never be an answer; a finite constant keeps softmax/log-softmax NaN-free.
    span_logits = jnp.where(attention_mask[..., None].astype(bool), span_logits, -1e9)
    outputs = {'start_logits': span_logits[..., 0], 'end_logits': span_logits[..., 1]}
    if self.answerability:
      outputs['answerable_logits'] = FirstTokenHead(c, 1, name='answerability_head')(
          hidden, deterministic)[:, 0]
    return outputs
