"""ELECTRA pre-training in JAX/Flax.

The package root holds the command-line tools users type (`python -m electra_jax.main`,
`.convert`, `.inspect`, `.plot`, `.compile_check`, `.tokenizer`) and their shared runtime
(`startup`, `errors`, `files`, `reporting`). The work lives in the subpackages, each importing
only from the ones above it in this list (tests/test_layers.py holds the rule):

  parallel     device mesh, logical-axis shardings, TPU chips and topologies, HLO reading
  core         what is trained: networks, objectives, parameter layouts, optimizer, FLOPs
  spec         the config's rules, and the run spec: a config resolved and checked once
  data         corpora, tokenizers and the tf.data pipeline that masks on the fly
  interop      checkpoints, the train state, Hugging Face / TF1 conversion, pretrained loading
  pretraining  the trainer: host inputs, train/eval step, loop, ahead-of-time TPU compile
  finetune     GLUE, SQuAD and the linear probe
  inspection   what a trained discriminator sees (the inspector's engine)
"""
