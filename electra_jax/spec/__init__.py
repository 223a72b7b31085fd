"""The config's rules (`validate`) and the run spec resolved from a config once (`run`)."""
