"""Fine-tuning on one GLUE task: `--config=configs/finetune/glue.py:<task>`.

  python -m electra_jax.finetune --config=configs/finetune/glue.py:rte \
      --workdir=gs://BUCKET/finetune/electra-small --config.init_from=gs://BUCKET/electra-small \
      --config.seeds=0,1,2,3,4

Tasks: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli (GLUE's spellings work too). Data come
from TFDS `glue/<task>`, or from the official TSV files with
`--config.data.source=tsv --config.data.data_dir=/path/to/glue_data`. Run every task with the
same --workdir to get the GLUE average in WORKDIR/results.json.
"""

from electra_jax.configs.finetune import finetune_default


def get_config(task: str = 'sst2'):
  config = finetune_default.get_config()
  config.task.kind = 'glue'
  config.task.name = task  # checked against the GLUE registry when the run starts
  config.task.predict_test = True  # write GLUE submission files from the test split(s)
  # 'electra': the original's h[CLS] -> dropout -> linear (Glorot); 'hf': the HF port's
  # dense -> gelu -> dropout -> linear, for export to ElectraForSequenceClassification.
  config.task.classifier_head = 'electra'
  config.task.double_unordered = True  # MRPC, STS-B: train on both sentence orders (original)
  config.data.max_seq_length = 128
  return config
