"""The offline downstream probe: document coherence on the built-in corpus (no download).

  python -m electra_jax.finetune --config=configs/finetune/probe.py \
      --workdir=/tmp/probe --config.init_from=/tmp/electra-tiny --config.seeds=0,1,2

Two sentences of one document of Python's documentation: adjacent or not? Train/dev split by
document (finetune/probe_data.py); accuracy; fine-tuned by the GLUE loop. The tokenizer and the
architecture come from `init_from`. Used by benchmarks/compare_objectives.py.
"""

import ml_collections

from electra_jax.configs.finetune import finetune_default


def get_config():
  config = finetune_default.get_config()
  config.task.kind = 'probe'
  config.task.name = 'doc_coherence'
  config.task.predict_test = False  # no hidden test split: dev accuracy is the result
  config.task.classifier_head = 'electra'  # h[CLS] -> dropout -> linear, as for GLUE
  config.task.double_unordered = False  # the order of the pair is part of the question
  config.data.source = 'builtin'  # the built-in corpus (the only source the probe reads)
  config.data.max_seq_length = 128
  config.probe = ml_collections.ConfigDict()
  config.probe.builtin_packages = ''  # packages whose docstrings join the documents ('' = stdlib)
  config.probe.dev_fraction = 0.2  # share of documents (by a hash of their text) held out as dev
  config.probe.max_train_examples = 2000  # one example per document, at most this many
  config.probe.max_dev_examples = 500
  config.probe.seed = 0  # which documents, sentence pairs and labels (not the fine-tuning seed)
  config.train.num_epochs = 3
  return config
