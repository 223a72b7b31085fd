"""Fine-tuning configs: `glue` (argument: the task) and `squad` (argument: the version)."""
