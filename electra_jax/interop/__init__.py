"""Interop and checkpoints: orbax checkpoints, the train state, Hugging Face and TF1 conversion,
and loading a pre-trained encoder from any of them.

Nothing here imports the trainer (`electra_jax.pretraining`): conversion runs without the loop
(tests/test_layers.py).
"""
