"""Shared fine-tuning config: the reference recipe (ELECTRA.md, "Optimisation") for every task.

`glue.py:<task>` and `squad.py:<version>` build on this and fill in the task and data sections.
Fields set to -1 take the per-size (learning rate, layer-wise decay) or per-task (epochs) default.
"""

import ml_collections

from electra_jax.configs import default  # the model, tokenizer and mesh sections


def get_config() -> ml_collections.ConfigDict:
  pretraining = default.get_config()
  config = ml_collections.ConfigDict()

  # ---- Starting point --------------------------------------------------------------------
  config.init_from = ''  # pre-training workdir, HF directory or TF1 prefix; '' = from scratch
  config.init_step = -1  # pre-training workdir: the checkpoint step to load; -1 = the latest
  config.model_size = ''  # 'small' | 'base' | 'large' (picks LR and decay); '' = from the width
  config.seeds = (0,)  # one run per seed (--config.seeds=0,1,2); several report median + spread
  # From scratch: the architecture. With init_from the checkpoint's architecture is used and only
  # the compute settings here (dtype, param_dtype, scan_layers, remat) apply.
  config.model = pretraining.model
  # path '' = the checkpoint's own tokenizer (from scratch: the built-in corpus's model).
  config.tokenizer = pretraining.tokenizer

  # ---- Task and data (filled in by glue.py / squad.py) -----------------------------------
  config.task = ml_collections.ConfigDict()
  config.task.kind = ''  # 'glue' or 'squad'
  config.task.name = ''  # GLUE task ('sst2', 'mnli', ...) or SQuAD version ('v1.1', 'v2.0')
  config.data = ml_collections.ConfigDict()
  config.data.source = 'tfds'  # 'tfds', or the official files: 'tsv' (GLUE) / 'json' (SQuAD)
  config.data.data_dir = ''  # tsv/json: directory of the download (local or gs://); tfds: data_dir
  config.data.max_seq_length = 128  # tokens per example, [CLS]/[SEP] included

  # ---- Optimisation ----------------------------------------------------------------------
  config.train = ml_collections.ConfigDict()
  config.train.num_epochs = -1  # -1 = the task's (GLUE: 3, RTE/STS-B 10; SQuAD 2)
  config.train.batch_size = 32  # global batch
  config.train.eval_batch_size = 128  # global batch for dev/test prediction
  config.train.learning_rate = -1.0  # peak; -1 = 1e-4 (small, base) / 5e-5 (large)
  config.train.layerwise_lr_decay = -1.0  # lr * decay**(L+2-depth); -1 = 0.8 / 0.9 (large)
  # 'original': head depth L+2 (top layer decay**2), as _get_layer_lrs; 'no_gap': head L+1.
  config.train.layerwise_lr_rule = 'original'
  config.train.warmup_fraction = 0.1  # W = this share of the steps T; lr*(1-t/T)*min(1,t/W)
  # The optimizer is pre-training's AdamW, with its settings (see default.py): weight_decay,
  # adam_b1, adam_b2, adam_eps, bias_correction, grad_clip_norm.
  for field in ('weight_decay', 'adam_b1', 'adam_b2', 'adam_eps', 'bias_correction',
                'grad_clip_norm'):
    config.train[field] = pretraining.train[field]
  config.train.dropout_prob = 0.1  # hidden and attention dropout; -1 = the checkpoint's
  config.train.log_every = 50  # steps between metrics.jsonl records
  # False: report the model after the last epoch (the original's protocol); True: evaluate on dev
  # after every epoch and report the best (reads higher; results.json then says so).
  config.train.select_best_epoch = False

  # ---- Device mesh (as in pre-training) --------------------------------------------------
  config.mesh = pretraining.mesh
  return config
