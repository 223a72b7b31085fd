"""Shared default pre-training config: ELECTRA-Small hyperparameters on the built-in corpus.

Every size config (`tiny.py`, `small.py`, `base.py`, `large.py`) imports this file and changes a
few fields. Override any field on the command line, e.g. `--config.train.num_steps=1000`.
"""

import ml_collections


def get_model_config() -> ml_collections.ConfigDict:
  """Sizes of one encoder network (the discriminator; the generator's is derived from it)."""
  m = ml_collections.ConfigDict()
  m.vocab_size = 30522  # rows of the word-embedding table; must be >= the tokenizer's vocab
  m.embedding_size = 128  # E: width of the (shared) embedding tables
  m.hidden_size = 256  # H: transformer width; an E->H `embeddings_project` exists iff E != H
  m.num_layers = 12  # transformer blocks
  m.num_heads = 4  # attention heads; must divide hidden_size (reference head size is 64)
  m.intermediate_size = 1024  # FFN inner width
  m.max_position_embeddings = 512  # rows of the position table; >= data.max_seq_length
  m.type_vocab_size = 2  # token types (segments A/B)
  m.hidden_dropout_prob = 0.1  # dropout on embeddings, attention output and FFN output
  m.attention_dropout_prob = 0.1  # dropout on attention probabilities
  m.initializer_range = 0.02  # stddev of the truncated-normal weight init
  m.layer_norm_eps = 1e-12  # as in BERT/ELECTRA (Flax's default is 1e-6)
  m.dtype = 'float32'  # compute dtype: 'float32' or 'bfloat16' (softmax/losses stay float32)
  m.param_dtype = 'float32'  # parameters (and optimizer state) stay float32
  m.scan_layers = False  # nn.scan over layers: compile time independent of depth
  m.remat = 'none'  # rematerialise each layer: 'none', 'full' or 'dots' (save matmul outputs)
  return m


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.seed = 0  # fixes parameter init, data order, masking and sampling

  # ---- Model -----------------------------------------------------------------------------
  config.model = get_model_config()  # the discriminator

  # ---- ELECTRA objective -----------------------------------------------------------------
  config.electra = ml_collections.ConfigDict()
  # What is pre-trained (the paper's section 3.2 comparison; electra_jax/core/objectives/):
  # 'electra' (replaced-token detection on every token; the original), 'mlm' (BERT: one
  # encoder of model.* size with a tied masked-LM head, no generator, BERT's 80/10/10 masking
  # whatever data.mask_token_prob/random_token_prob say), 'electra_15' (discriminator loss on
  # the masked positions only), 'replace_mlm' (masked positions get generator samples; the main
  # network is a masked LM on them), 'all_tokens_mlm' (as replace_mlm, predicting every token
  # through a sigmoid copy gate). A main masked LM's loss has weight 1; disc_weight applies to
  # discriminators only.
  config.electra.objective = 'electra'
  config.electra.generator_hidden_fraction = 0.25  # H_gen = round(H * fraction); base: 1/3
  # 'shared' | 'gdes' (DeBERTa-v3) | 'none' (untied: generator tables H_gen wide, no projection)
  config.electra.embedding_sharing = 'shared'
  config.electra.gen_weight = 1.0  # weight of the generator's masked-LM loss
  config.electra.disc_weight = 50.0  # weight of the discriminator's RTD loss
  config.electra.temperature = 1.0  # sampling temperature for the generator's softmax
  config.electra.disallow_correct = False  # never sample the original token at a masked position
  # How replacements are drawn from the generator's softmax. 'gumbel': the original's Gumbel-max
  # (one uniform per vocabulary entry per masked slot). 'inverse_cdf': the same distribution from
  # one uniform per slot, ~10x cheaper on a CPU (benchmarks/bench_train_step.py); the individual
  # draws differ, so a run's samples (not its statistics) change.
  config.electra.sampler = 'gumbel'

  # ---- Tokenizer -------------------------------------------------------------------------
  config.tokenizer = ml_collections.ConfigDict()
  config.tokenizer.type = 'sentencepiece'  # 'sentencepiece' or 'wordpiece'
  config.tokenizer.path = ''  # .model file (SentencePiece) or vocab.txt (WordPiece); '' = auto
  config.tokenizer.vocab_size = 30522  # size of a SentencePiece model trained automatically
  config.tokenizer.cache_dir = ''  # where an auto-trained model is kept; '' = ~/.cache/electra_jax
  config.tokenizer.lower_case = True  # WordPiece: BERT-uncased lower-casing
  config.tokenizer.strip_accents = True  # WordPiece: BERT-uncased accent stripping

  # ---- Data ------------------------------------------------------------------------------
  config.data = ml_collections.ConfigDict()
  # 'builtin' | 'files' | 'jsonl' | 'parquet' | 'hf' | 'tfds' | 'prepared' | 'synthetic'.
  # jsonl/parquet/hf: each record is a document, its text field cut into lines as a document of
  # a text file is (data/documents.py); `pip install electra-jax[hf]` brings pyarrow and datasets.
  config.data.source = 'builtin'
  # files/jsonl/parquet: files/globs (comma-separated), local or gs://; .gz allowed (text, jsonl)
  config.data.train_files = ''
  config.data.eval_files = ''  # held-out files; '' = hold out eval_fraction of train_files
  config.data.text_field = 'text'  # jsonl/parquet/hf: the field (column) holding the text
  # source=hf: a `Dataset.save_to_disk` directory, or a name/path for `datasets.load_dataset`
  # (e.g. 'wikimedia/wikipedia' with hf_name='20231101.en', or 'json' with hf_data_files).
  config.data.hf_path = ''
  config.data.hf_name = ''  # load_dataset's configuration name; '' = none
  config.data.hf_data_files = ''  # load_dataset's data_files (comma-separated); '' = none
  config.data.hf_split = 'train'  # the training split
  config.data.hf_eval_split = ''  # '' = hold out eval_fraction of hf_split's documents
  # hf_streaming: read with load_dataset(streaming=True), nothing downloaded or cached first; a
  # shard is one of the stream's files, so hosts need as many files. Exact resume re-reads a
  # shard up to the saved row (the stream cannot seek).
  config.data.hf_streaming = False
  # Rows per shard (the unit spread over hosts); with hf_streaming, records read per chunk.
  config.data.hf_shard_rows = 10_000
  # Bad input met mid-stream (a line that is not JSON, a record without its text field, a
  # truncated gzip, a corrupt prepared record, ...): 'error' stops with one line naming the file
  # and position (the original has no such switch); 'skip' leaves it out and counts it
  # (`bad_records` in the metrics), naming the first few in the log.
  config.data.on_bad_record = 'error'
  config.data.tfds_name = ''  # e.g. 'wikipedia/20230601.en' or 'c4/en'
  config.data.tfds_data_dir = ''  # TFDS data_dir, e.g. gs://bucket/tensorflow_datasets
  config.data.tfds_train_split = 'train'  # TFDS split (slicing allowed: 'train[:99%]')
  config.data.tfds_eval_split = ''  # '' = hold out eval_fraction of the train split
  config.data.tfds_text_feature = 'text'  # the feature holding the raw text
  config.data.prepared_dir = ''  # output of `python -m electra_jax.data.prepare` (record shards)
  # source=builtin: installed packages (comma-separated) whose docstrings join the standard
  # library's documentation, read with `ast` and cached; '' = the standard library alone.
  config.data.builtin_packages = ''
  config.data.eval_fraction = 0.01  # fraction held out for eval when no eval split is given
  config.data.max_seq_length = 128  # packed example length, [CLS] and [SEP]s included
  config.data.short_seq_prob = 0.05  # chance of a short random target length after an example
  config.data.single_segment_prob = 0.1  # chance an example is one segment, not A/B
  config.data.mask_prob = 0.15  # fraction of candidate tokens to mask
  config.data.max_predictions_per_seq = -1  # -1 = int((mask_prob + 0.005) * max_seq_length)
  config.data.mask_token_prob = 0.85  # of masked positions: share replaced by [MASK]
  config.data.random_token_prob = 0.0  # share replaced by a random token (BERT: 0.1)
  config.data.shuffle_buffer = 10_000  # examples in the shuffle buffer
  config.data.prefetch = -1  # batches to prefetch; -1 = tf.data.AUTOTUNE
  # Batches of the input stream to skip once, right after resuming (e.g. past a loss spike,
  # with train.restart_from_step); recorded in the checkpoints, so later resumes keep the place.
  config.data.skip_batches = 0

  # ---- Training --------------------------------------------------------------------------
  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 1_000_000  # optimizer steps
  config.train.batch_size = 128  # global batch, over all hosts and devices
  config.train.grad_accum_steps = 1  # micro-batches per step (scan); must divide the batch
  config.train.learning_rate = 5e-4  # peak learning rate
  config.train.warmup_steps = 10_000  # lr * (1 - t/num_steps) * min(1, t/warmup_steps)
  config.train.weight_decay = 0.01  # decoupled; not applied to LayerNorm params or biases
  config.train.adam_b1 = 0.9  # Adam first-moment decay
  config.train.adam_b2 = 0.999  # Adam second-moment decay
  config.train.adam_eps = 1e-6  # Adam epsilon (the reference's 1e-6, not optax's 1e-8)
  config.train.bias_correction = False  # the original's Adam; True = optax's bias-corrected Adam
  config.train.grad_clip_norm = 1.0  # clip by global norm; 0 disables
  config.train.log_every = 100  # steps between progress lines / metrics.jsonl records
  config.train.eval_every = 10_000  # steps between evaluations on the held-out split; 0 = never
  config.train.eval_steps = 50  # batches per evaluation
  config.train.checkpoint_every = 5_000  # steps between (asynchronous) checkpoints
  config.train.keep_checkpoints = 3  # keep the last K checkpoints ...
  config.train.keep_period = 100_000  # ... plus every checkpoint at a multiple of this step
  # Steps with a non-finite loss or gradients are never applied (parameters and optimizer state
  # stay, the step and data advance) and are counted (`nonfinite_steps`); more than this many in
  # a row stops the run with one error line. 0 = stop at the first, as the original does (its
  # TF Estimator stops on a NaN loss: NanTensorHook); e.g. 20 lets a run ride out a short spike.
  config.train.max_consecutive_nonfinite = 0
  # Resume from this kept checkpoint step instead of the latest (0 = the latest), e.g. before a
  # loss spike; later checkpoints are moved to WORKDIR/checkpoints_after_<step>, not deleted.
  # Acts once: checkpoints written after the restart record it, so a rerun resumes plainly.
  config.train.restart_from_step = 0
  config.train.peak_tflops_per_device = 0.0  # chip peak for MFU; 0 = look up the device kind
  # The random numbers of dropout and the generator's sampling, by jax PRNG implementation:
  # 'threefry' (jax's default; with jax_threefry_partitionable the same bits on any mesh), 'rbg'
  # or 'unsafe_rbg' (XLA's RngBitGenerator; its bits may change with the backend or XLA version,
  # and a vmapped draw takes all its bits from the first example's key, so the per-example
  # sampling keys no longer make micro-batches, grad_accum_steps > 1, sample the full batch's).
  # 'auto' = the platform's choice in validate.AUTO_PRNG_IMPL (threefry everywhere for now).
  # Keys are remade from `seed` at every start, so any choice resumes bit-exactly if unchanged.
  config.train.prng_impl = 'auto'
  # Profiling on demand: a jax.profiler trace of `profile_steps` train steps into
  # WORKDIR/profile, started once compilation is done and `profile_warmup_steps` steps of this
  # invocation have run; `tensorboard --logdir WORKDIR/profile` (profile plugin) or XProf show it.
  config.train.profile_steps = 0  # train steps to trace; 0 = no trace
  config.train.profile_warmup_steps = 5  # steps of this invocation before the trace starts

  # ---- Continued pre-training ------------------------------------------------------------
  config.init_from = ''  # HF directory, TF1 checkpoint prefix or workdir: weights only

  # ---- Device mesh -----------------------------------------------------------------------
  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1  # data parallelism; -1 = the devices left over
  config.mesh.fsdp = 1  # fully sharded data parallelism (params and optimizer state)
  config.mesh.tensor = 1  # tensor (model) parallelism over heads / FFN
  config.mesh.dcn_data = -1  # multi-slice: data parallelism across slices; -1 = slice count
  # CPU hosts only: how many XLA devices this host's cores are split into (data parallel over
  # them; accelerators ignore it). One XLA:CPU device leaves cores idle on a step's many small
  # ops: on 2 cores, two devices ran Small's step 1.02-1.09x and tiny's 1.12-1.14x faster
  # (issue 24). 0 = auto (parallel.mesh.cpu_devices: one per core, at most 8, dividing the
  # micro-batch, for the default all-data mesh); 1 = jax's default, one device. XLA_FLAGS'
  # --xla_force_host_platform_device_count, when set, wins.
  config.mesh.cpu_devices = 0
  # Logical axis -> mesh axes. Parameters use 'vocab', 'embed', 'mlp', 'heads', 'kv';
  # activations use 'batch', 'length', 'act_embed', 'act_heads', 'act_mlp', 'act_vocab'.
  config.mesh.logical_axis_rules = (
      ('batch', ('data', 'fsdp')),
      ('length', None),
      ('act_embed', None),
      ('act_heads', 'tensor'),
      ('act_mlp', 'tensor'),
      ('act_vocab', None),
      ('embed', 'fsdp'),
      ('heads', 'tensor'),
      ('mlp', 'tensor'),
      ('kv', None),
      ('vocab', None),  # 30522 is not divisible by most tensor sizes; the tables are small
  )
  return config
