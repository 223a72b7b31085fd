"""The RTD inspector's engine, by job: loading, examples, detection, terminal and HTML output.

The CLI is `electra_jax.inspect` (`python -m electra_jax.inspect`, `electra-jax-inspect`).
"""
