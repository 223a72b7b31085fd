"""The trainer: the host input feed, the jitted train/eval step, the loop with its checkpoints and
faults, and the same program compiled ahead of time for a TPU topology (`tpu_compile`)."""
