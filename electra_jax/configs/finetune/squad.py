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
  # 'joint': the original's head (qa_tasks.py): context-only answer mask, end conditioned on the
  # start with a beam, answerability classifier on [CLS] + start-weighted h (v1.1 too, as the
  # code). 'independent': linear start/end + an HF-style [CLS] classifier (v2.0 only).
  config.task.qa_head = 'joint'
  config.data.max_seq_length = 512  # window length, question and special tokens included
  config.data.train_file = ''  # json: the training file; '' = data_dir/train-<version>.json
  config.data.dev_file = ''  # json: the dev file; '' = data_dir/dev-<version>.json
  config.data.doc_stride = 128  # context tokens between the starts of consecutive windows
  config.data.max_query_length = 64  # questions are cut to this many tokens
  config.squad = ml_collections.ConfigDict()
  config.squad.n_best_size = 20  # n-best list length (independent head: candidates per end)
  config.squad.beam_size = 20  # joint head: best starts kept, and best ends for each
  config.squad.max_answer_length = 30  # longest answer, in tokens
  config.squad.answerable_weight = 0.5  # weight of the no-answer classifier's loss
  # v2.0 null odds: 'classifier' (its logit alone: the original, the joint head's only choice);
  # the independent head also takes 'span' or 'sum' (span + classifier, its earlier default).
  config.squad.null_score = 'classifier'
  return config
