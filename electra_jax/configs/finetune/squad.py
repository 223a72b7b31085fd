"""Fine-tuning on SQuAD: `--config=configs/finetune/squad.py:<v1.1|v2.0>`.

  python -m electra_jax.finetune --config=configs/finetune/squad.py:v2.0 \
      --workdir=gs://BUCKET/finetune/electra-base --config.init_from=gs://BUCKET/electra-base

Data come from TFDS `squad/v1.1` / `squad/v2.0`, or from the official JSON files with
`--config.data.source=json --config.data.data_dir=DIR` (train-v2.0.json, dev-v2.0.json) or
`--config.data.train_file=... --config.data.dev_file=...`.
"""

import ml_collections

from electra_jax.configs.finetune import finetune_default


def get_config(version: str = 'v1.1'):
  config = finetune_default.get_config()
  config.task.kind = 'squad'
  config.task.name = version  # 'v1.1' or 'v2.0'
  config.data.max_seq_length = 512  # window length, question and special tokens included
  config.data.train_file = ''  # json: the training file; '' = data_dir/train-<version>.json
  config.data.dev_file = ''  # json: the dev file; '' = data_dir/dev-<version>.json
  config.data.doc_stride = 128  # context tokens between the starts of consecutive windows
  config.data.max_query_length = 64  # questions are cut to this many tokens
  config.squad = ml_collections.ConfigDict()
  config.squad.n_best_size = 20  # start/end candidates per window and n-best list length
  config.squad.max_answer_length = 30  # longest answer, in tokens
  config.squad.answerable_weight = 0.5  # v2.0: weight of the no-answer classifier's loss
  config.squad.null_score = 'sum'  # v2.0 null odds: 'span', 'classifier' or 'sum' of both
  return config
