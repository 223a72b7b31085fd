# shellcheck shell=bash
# The compile check of `create` and `watch`: before a TPU is created (and paid for), the config's
# train step is compiled for the requested accelerator type on this machine, with no TPU
# (`python -m electra_jax.compile_check`, which needs libtpu here: pip install -e '.[tpu]'). A
# config that does not compile or fit stops tpu.sh with the check's own error line;
# --no-compile-check (TPU_COMPILE_CHECK=false) skips it.

# Prints the compile check's topology name of accelerator type $1: Cloud TPU's v5litepod-N is v5e-N.
compile_check_topology() {
  case $1 in
    v5litepod-*) echo "v5e-${1##*-}" ;;
    *) echo "$1" ;;
  esac
}

# Compiles FLAG_CONFIG, with its --config.* overrides, for FLAG_ACCELERATOR; stops tpu.sh with
# exit status 2 when it does not fit (or the check refuses the input), 1 when the check cannot run.
run_compile_check() {
  [[ $FLAG_COMPILE_CHECK == true ]] || return 0
  local python=$FLAG_CHECK_PYTHON topology override output rc=0 line
  topology=$(compile_check_topology "$FLAG_ACCELERATOR")
  local args=(-m electra_jax.compile_check "--config=$FLAG_CONFIG" "--topology=$topology")
  for override in ${CONFIG_OVERRIDES[@]+"${CONFIG_OVERRIDES[@]}"}; do
    if [[ $override == --config.*=* ]]; then args+=("$override"); fi
  done
  if [[ $FLAG_DRY_RUN == true ]]; then
    info "dry run: the compile check would run first, in $REPO_ROOT: $(shell_join "$python" "${args[@]}")"
    return 0
  fi
  command -v "$python" >/dev/null ||
    die "the compile check needs Python: '$python' not found (--check-python=PATH, or skip the check with --no-compile-check)"
  (cd "$REPO_ROOT" && "$python" -c 'import libtpu' >/dev/null 2>&1) ||
    die "the compile check needs libtpu on this machine: pip install -e '.[tpu]' (into $python), or skip the check with --no-compile-check"
  info "compiling $FLAG_CONFIG for $FLAG_ACCELERATOR on this machine before creating it (minutes for large configs; --no-compile-check skips this)"
  output=$(cd "$REPO_ROOT" && "$python" "${args[@]}" 2>&1) || rc=$?
  if ((rc == 0)); then
    printf '%s\n' "$output" >&2
    return 0
  fi
  line=$(grep -m1 '^error: ' <<<"$output" || true)
  if ((rc == 2)) && [[ -n $line ]]; then
    usage_error "compile check of $FLAG_CONFIG on $FLAG_ACCELERATOR: ${line#error: } No TPU was created (--no-compile-check skips the check)."
  fi
  printf '%s\n' "$output" >&2
  die "the compile check failed (exit status $rc; its output is above): no TPU was created; --no-compile-check skips the check"
}
