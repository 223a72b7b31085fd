"""Task models for fine-tuning: the pre-trained discriminator's encoder plus a small task head.

A task model's parameters are the discriminator's (`embeddings/`, `embeddings_project/`,
`encoder/`) without its replaced-token head (`discriminator_predictions/`), plus one head:

  classifier/{kernel [H, num_labels], bias}                   GLUE, the original's (default)
  classifier/{dense [H, H], out_proj [H, num_labels]}         GLUE, classifier_head='hf'
  span_head/{kernel [H, 2], bias [2]}                          SQuAD start/end logits
  answerability_head/{dense [H, H], out_proj [H, 1]}          SQuAD 2.0 only

The original's heads are `tf.layers.dense` layers without `kernel_initializer`, so they are
Glorot-uniform (`model.GLOROT_UNIFORM`); the Hugging Face-style heads keep the HF port's
truncated-normal init.

`HEAD_NAMES` lists the head subtrees, which layer-wise learning-rate decay puts at the top depth.
"""

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from electra_jax import model as model_lib

# Top-level parameter subtrees that belong to the pre-trained encoder (everything else is a head).
ENCODER_NAMES = ('embeddings', 'embeddings_project', 'encoder')
HEAD_NAMES = ('classifier', 'span_head', 'answerability_head')
HEADS = ('classification', 'span')
# `task.classifier_head`: 'electra' = the original's h[CLS] -> dropout -> linear
# (classification_tasks.py); 'hf' = ElectraForSequenceClassification's head, for export.
CLASSIFIER_HEADS = ('electra', 'hf')


def _gelu(x):
  return nn.gelu(x, approximate=False)  # the exact erf form, as in the encoder


def first_token_linear(config, hidden, num_outputs: int, name: str, deterministic: bool):
  """The original's classifier (`ClassificationTask` / `RegressionTask.get_prediction_module`),
  called inside a compact module: first token (`get_pooled_output` is `sequence_output[:, 0]`,
  no pooler) -> dropout -> dense(H->num_outputs) named `name`, Glorot-uniform.

  Input [batch, length, H]; returns float32 [batch, num_outputs].
  """
  first = nn.Dropout(config.hidden_dropout_prob)(hidden[:, 0, :], deterministic=deterministic)
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
    dropout = lambda x: nn.Dropout(c.hidden_dropout_prob)(x, deterministic=deterministic)
    first = dropout(hidden[:, 0, :])
    inner = _gelu(model_lib.Dense(c, c.hidden_size, ('embed', 'mlp'), name='dense')(first))
    logits = model_lib.Dense(c, self.num_outputs, ('mlp', None), name='out_proj')(dropout(inner))
    return logits.astype(jnp.float32)


class TaskModel(nn.Module):
  """Encoder + task head.

  Attributes:
    config: the encoder's model config (`config.model` schema).
    head: 'classification' (GLUE) or 'span' (SQuAD).
    num_labels: classification outputs; 1 means regression (STS-B).
    classifier_head: 'electra' (the original's linear head) or 'hf' (`CLASSIFIER_HEADS`).
    answerability: span head only: add SQuAD 2.0's no-answer classifier on the first token.
  """
  config: ml_collections.ConfigDict
  head: str
  num_labels: int = 2
  answerability: bool = False
  classifier_head: str = 'electra'

  @nn.compact
  def __call__(self, input_ids, token_type_ids, attention_mask, deterministic: bool = True):
    """Inputs int32 [batch, length]. Returns a dict of float32 outputs:

    classification: {'logits': [batch, num_labels]};
    span: {'start_logits', 'end_logits': [batch, length]} (padding positions at -1e9) and, with
      `answerability`, {'answerable_logits': [batch]}, the logit that the window has NO answer.
    """
    c = self.config
    if self.head not in HEADS:
      raise ValueError(f'head={self.head!r}; use one of {HEADS}.')
    if self.classifier_head not in CLASSIFIER_HEADS:
      raise ValueError(f'task.classifier_head={self.classifier_head!r}; use one of '
                       f'{CLASSIFIER_HEADS}.')
    tables = model_lib.EmbeddingTables(c, name='embeddings')()
    hidden = model_lib.encode(self, c, tables, input_ids, token_type_ids, attention_mask,
                              deterministic)
    if self.head == 'classification':
      if self.classifier_head == 'electra':
        return {'logits': first_token_linear(c, hidden, self.num_labels, 'classifier',
                                             deterministic)}
      return {'logits': FirstTokenHead(c, self.num_labels, name='classifier')(hidden,
                                                                              deterministic)}

    span_logits = model_lib.Dense(c, 2, ('embed', None), name='span_head')(hidden)
    span_logits = span_logits.astype(jnp.float32)
    # Padding can never be an answer; a finite constant keeps softmax/log-softmax NaN-free.
    span_logits = jnp.where(attention_mask[..., None].astype(bool), span_logits, -1e9)
    outputs = {'start_logits': span_logits[..., 0], 'end_logits': span_logits[..., 1]}
    if self.answerability:
      outputs['answerable_logits'] = FirstTokenHead(c, 1, name='answerability_head')(
          hidden, deterministic)[:, 0]
    return outputs
