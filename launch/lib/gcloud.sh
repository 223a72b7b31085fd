# shellcheck shell=bash
# The gcloud commands of tpu.sh. Every call goes through `run`, which in --dry-run mode prints
# the exact command (quoted so that it can be pasted into a shell) instead of running it.

# Quotes one word for a POSIX shell: plain words stay as they are, the rest go in single quotes.
shell_quote() {
  if [[ -n $1 && $1 =~ ^[-A-Za-z0-9_./=:@,+%^]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

shell_join() {
  local word sep=
  for word in "$@"; do
    printf '%s' "$sep"
    shell_quote "$word"
    sep=' '
  done
  printf '\n'
}

# Runs a command, or prints it in --dry-run mode. Real runs echo it to stderr first.
run() {
  if [[ $FLAG_DRY_RUN == true ]]; then
    shell_join "$@"
    return 0
  fi
  local shown=() arg
  for arg in "$@"; do
    # A worker script is long: --dry-run shows it whole.
    if [[ $arg == --command=*$'\n'* ]]; then arg="--command=<script of $(wc -l <<<"$arg" | tr -d ' ') lines>"; fi
    shown+=("$arg")
  done
  printf '+ %s\n' "$(shell_join "${shown[@]}")" >&2
  "$@"
}

# --zone and --project, for every `compute tpus` command.
scope_args() {
  SCOPE=("--zone=$FLAG_ZONE")
  if [[ -n $FLAG_PROJECT ]]; then SCOPE+=("--project=$FLAG_PROJECT"); fi
}

runtime_version() {
  if [[ -n $FLAG_RUNTIME_VERSION ]]; then
    echo "$FLAG_RUNTIME_VERSION"
  else
    default_runtime_version "$(accelerator_generation "$FLAG_ACCELERATOR")"
  fi
}

gcloud_create() {
  local args
  scope_args
  if [[ $FLAG_QUEUED == true ]]; then
    # A queued resource waits for capacity instead of failing when the zone has none.
    args=(gcloud compute tpus queued-resources create "$FLAG_NAME" "--node-id=$FLAG_NAME" "${SCOPE[@]}"
      "--accelerator-type=$FLAG_ACCELERATOR" "--runtime-version=$(runtime_version)")
  else
    args=(gcloud compute tpus tpu-vm create "$FLAG_NAME" "${SCOPE[@]}"
      "--accelerator-type=$FLAG_ACCELERATOR" "--version=$(runtime_version)")
  fi
  if [[ $FLAG_SPOT == true ]]; then args+=(--spot); fi
  if [[ $FLAG_PREEMPTIBLE == true ]]; then args+=(--preemptible); fi
  if [[ $FLAG_RESERVED == true ]]; then args+=(--reserved); fi
  if [[ -n $FLAG_NETWORK ]]; then args+=("--network=$FLAG_NETWORK"); fi
  if [[ -n $FLAG_SUBNETWORK ]]; then args+=("--subnetwork=$FLAG_SUBNETWORK"); fi
  run "${args[@]}"
}

gcloud_delete() {
  scope_args
  if [[ $FLAG_QUEUED == true ]]; then
    # --force deletes the TPU VM of the queued resource too.
    run gcloud compute tpus queued-resources delete "$FLAG_NAME" "${SCOPE[@]}" --force --quiet
  else
    run gcloud compute tpus tpu-vm delete "$FLAG_NAME" "${SCOPE[@]}" --quiet
  fi
}

# Prints the TPU VM's description, for people.
gcloud_describe() {
  scope_args
  run gcloud compute tpus tpu-vm describe "$FLAG_NAME" "${SCOPE[@]}" \
    '--format=table(name.basename(),acceleratorType,state,health,runtimeVersion)'
}

# Sets TPU_STATE to the state of the TPU VM (READY, PREEMPTED, ...) or of the queued resource
# (ACTIVE, SUSPENDED, ...): NOT_FOUND when there is none, UNKNOWN when gcloud failed otherwise.
# In --dry-run mode it prints the command and assumes state $1.
# shellcheck disable=SC2034  # TPU_STATE is this function's result
read_tpu_state() {
  local output errors err_file status=0 args
  scope_args
  args=(gcloud compute tpus tpu-vm describe "$FLAG_NAME" "${SCOPE[@]}" '--format=value(state)')
  if [[ $FLAG_QUEUED == true ]]; then
    args=(gcloud compute tpus queued-resources describe "$FLAG_NAME" "${SCOPE[@]}" '--format=value(state.state)')
  fi
  if [[ $FLAG_DRY_RUN == true ]]; then
    shell_join "${args[@]}"
    TPU_STATE=$1
    return 0
  fi
  # stdout holds the state; stderr may hold warnings, or the error that says there is no TPU.
  err_file=$(mktemp)
  output=$("${args[@]}" 2>"$err_file") || status=$?
  errors=$(<"$err_file")
  rm -f "$err_file"
  if ((status == 0)) && [[ -n $output ]]; then
    TPU_STATE=${output##*$'\n'}
  elif [[ $errors == *NOT_FOUND* || $errors == *'not found'* ]]; then
    TPU_STATE=NOT_FOUND
  else
    warn "could not read the TPU state (gcloud exit $status): $errors"
    TPU_STATE=UNKNOWN
  fi
}

# Succeeds when training wrote its COMPLETED marker into the gs:// workdir.
training_completed() {
  local args=(gcloud storage ls "${FLAG_WORKDIR%/}/COMPLETED")
  if [[ $FLAG_DRY_RUN == true ]]; then
    shell_join "${args[@]}"
    return 1
  fi
  "${args[@]}" >/dev/null 2>&1
}

gcloud_ssh() {
  local worker=$1 script=$2
  scope_args
  run gcloud compute tpus tpu-vm ssh "$FLAG_NAME" "${SCOPE[@]}" "--worker=$worker" --quiet "--command=$script"
}

gcloud_scp_to_all() {
  local local_path=$1 remote_path=$2
  scope_args
  run gcloud compute tpus tpu-vm scp "$local_path" "$FLAG_NAME:$remote_path" "${SCOPE[@]}" --worker=all --quiet
}
