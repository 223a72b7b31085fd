# shellcheck shell=bash
# `tpu.sh watch`: keeps a pre-training job alive on a Spot (or preemptible) TPU. Each round it
#   1. stops, successfully, once the job wrote COMPLETED into the gs:// workdir;
#   2. re-creates the TPU when it is PREEMPTED, TERMINATED or gone (a queued resource when it is
#      SUSPENDED or FAILED), which takes minutes to hours depending on capacity;
#   3. once the TPU is READY again, runs setup and train, and the job resumes from the latest
#      checkpoint in the workdir;
#   4. restarts a job that died on a healthy TPU, at most --max-restarts times.
# The steps run as child `tpu.sh` processes (settings passed as TPU_* variables), so they are the
# very commands a person would type, each under its own `set -e`.

# Runs `tpu.sh ARGS...` with this watch's settings.
watch_step() {
  "$BASH" "$TPU_SH" "$@"
}

# Exports every setting of watch as the TPU_* variable that its flag reads as default.
export_watch_settings() {
  local name
  for name in $(flags_of watch); do
    flag_index "$name"
    [[ -n ${FLAG_ENVS[FLAG_I]} ]] || continue
    export "${FLAG_ENVS[FLAG_I]}=${!FLAG_VARS[FLAG_I]}"
  done
}

# Prints how many workers run the job, or fails when they cannot be asked.
count_running_workers() {
  local output
  output=$(gcloud_ssh all "$(remote_status_script)") || return 1
  printf '%s\n' "$output" >&2
  grep -c ': training running' <<<"$output" || true
}

start_job() {
  local env_flags=() assignment
  for assignment in ${ENV_ASSIGNMENTS[@]+"${ENV_ASSIGNMENTS[@]}"}; do env_flags+=("--env=$assignment"); done
  watch_step setup && watch_step train ${env_flags[@]+"${env_flags[@]}"} -- \
    ${CONFIG_OVERRIDES[@]+"${CONFIG_OVERRIDES[@]}"}
}

cmd_watch() {
  validate_common
  validate_create
  validate_setup
  validate_workdir "for watch: a re-created TPU starts with a blank disk"
  validate_train
  validate_count interval "$FLAG_INTERVAL"
  validate_count max-restarts "$FLAG_MAX_RESTARTS"
  validate_count grace "$FLAG_GRACE"
  require_gcloud
  run_compile_check # once: the TPUs it re-creates run the same config
  # shellcheck disable=SC2034  # exported as TPU_COMPILE_CHECK to the create steps
  FLAG_COMPILE_CHECK=false
  export_watch_settings

  local hosts restarts=0 needs_start=false job_started=false round=0 assumed running
  hosts=$(accelerator_hosts "$FLAG_ACCELERATOR")
  if [[ $FLAG_DRY_RUN == true ]]; then
    info "dry run: one recovery, as if the TPU were PREEMPTED and then READY"
  fi
  while true; do
    round=$((round + 1))
    if training_completed; then
      info "training finished: ${FLAG_WORKDIR%/}/COMPLETED exists"
      return 0
    fi
    assumed=PREEMPTED
    if ((round > 1)); then assumed=READY; fi
    read_tpu_state "$assumed"
    case $TPU_STATE in
      READY | ACTIVE)
        if [[ $needs_start == false ]]; then
          if running=$(count_running_workers); then
            if ((running == hosts)); then
              job_started=true
            else
              if [[ $job_started == true ]]; then
                restarts=$((restarts + 1))
                ((restarts <= FLAG_MAX_RESTARTS)) ||
                  die "the job stopped on a healthy TPU $restarts times without finishing: see 'tpu.sh logs --worker=all'"
                warn "the job runs on $running of $hosts workers: restarting it ($restarts of at most $FLAG_MAX_RESTARTS)"
              else
                info "the job runs on $running of $hosts workers: starting it"
              fi
              # A job left on some workers waits forever for the others: clear them all first.
              if ((running > 0)); then watch_step stop || warn "stop failed; trying to start anyway"; fi
              needs_start=true
            fi
          else
            warn "could not ask the workers whether the job runs; asking again next round"
          fi
        fi
        if [[ $needs_start == true ]]; then
          if start_job; then
            needs_start=false
            job_started=true
          else
            warn "setup or train failed; trying again in ${FLAG_INTERVAL}s"
          fi
        fi
        ;;
      PREEMPTED | TERMINATED | NOT_FOUND | SUSPENDED | FAILED)
        info "TPU $FLAG_NAME is $TPU_STATE: re-creating it"
        if [[ $TPU_STATE != NOT_FOUND ]]; then
          watch_step delete || warn "delete failed; trying to create anyway"
        fi
        needs_start=true
        job_started=false
        if watch_step create; then continue; fi # on to setup and train, without a pause
        warn "create failed (no capacity?); trying again in ${FLAG_INTERVAL}s"
        ;;
      *) info "TPU $FLAG_NAME is $TPU_STATE: waiting" ;;
    esac
    if [[ $FLAG_DRY_RUN == true ]] && ((round >= 2)); then return 0; fi
    sleep "$FLAG_INTERVAL"
  done
}
