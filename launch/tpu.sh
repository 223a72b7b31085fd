#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# tpu.sh: ELECTRA pre-training on Cloud TPU VMs, from a v3-8 to a pod, with one entry point:
#   create, setup, train, status, logs, stop, delete, watch.
# Run `launch/tpu.sh --help` or `launch/tpu.sh SUBCOMMAND --help`; walkthrough in launch/README.md.
set -euo pipefail

TPU_SH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO_ROOT=$(cd "$(dirname "$TPU_SH")/.." && pwd)
readonly TPU_SH REPO_ROOT
SUBCOMMAND=

# shellcheck source=lib/flags.sh
source "$(dirname "$TPU_SH")/lib/flags.sh"
# shellcheck source=lib/validate.sh
source "$(dirname "$TPU_SH")/lib/validate.sh"
# shellcheck source=lib/gcloud.sh
source "$(dirname "$TPU_SH")/lib/gcloud.sh"
# shellcheck source=lib/remote.sh
source "$(dirname "$TPU_SH")/lib/remote.sh"
# shellcheck source=lib/watch.sh
source "$(dirname "$TPU_SH")/lib/watch.sh"
# shellcheck source=lib/compile_check.sh
source "$(dirname "$TPU_SH")/lib/compile_check.sh"

info() { echo "tpu.sh${SUBCOMMAND:+ $SUBCOMMAND}: $*" >&2; }
warn() { echo "tpu.sh${SUBCOMMAND:+ $SUBCOMMAND}: warning: $*" >&2; }
die() {
  echo "tpu.sh${SUBCOMMAND:+ $SUBCOMMAND}: error: $*" >&2
  exit 1
}
# Bad input: exit status 2, before any gcloud call.
usage_error() {
  echo "tpu.sh${SUBCOMMAND:+ $SUBCOMMAND}: error: $*" >&2
  exit 2
}

require_gcloud() {
  [[ $FLAG_DRY_RUN == true ]] || command -v gcloud >/dev/null ||
    die "gcloud not found: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)"
}

usage() {
  case ${1:-} in
    create) echo "usage: tpu.sh create [flags]

Creates the TPU VM: Spot, preemptible, reserved or on-demand; with --queued, a queued resource
that waits for capacity (see its state with 'tpu.sh status --queued'). First it compiles --config
(with any --config.FIELD=VALUE) for the accelerator type on this machine and stops if the config
does not fit; that needs libtpu here (pip install -e '.[tpu]'), --no-compile-check skips it." ;;
    setup) echo "usage: tpu.sh setup [flags]

On every worker: puts this repository at your HEAD commit into ~/REMOTE_DIR (shipped as a git
bundle, or cloned from --repo) and pip-installs it with the TPU build of jax into ~/REMOTE_DIR-venv.
Safe to run again, e.g. after a new commit." ;;
    train) echo "usage: tpu.sh train [flags] [--config.FIELD=VALUE ...] [-- PROGRAM_FLAGS ...]

On all workers at once: python -m electra_jax.main --config=CONFIG --workdir=WORKDIR OVERRIDES,
detached from ssh, logging to ~/REMOTE_DIR-logs/train-worker<N>.log. A job with the same workdir
resumes from its latest checkpoint." ;;
    status) echo "usage: tpu.sh status [flags]

Shows the TPU's state, whether each worker runs the job, and (with a gs:// --workdir) whether
training has finished." ;;
    logs) echo "usage: tpu.sh logs [flags]

Shows (and by default follows) the training log of one worker, or of all with --worker=all." ;;
    stop) echo "usage: tpu.sh stop [flags]

Stops the job on all workers (SIGTERM: it saves a checkpoint; SIGKILL after --grace seconds) and
frees the TPU chips from any other process." ;;
    delete) echo "usage: tpu.sh delete [flags]

Deletes the TPU VM (with --queued: the queued resource and its TPU). The gs:// workdir stays." ;;
    watch) echo "usage: tpu.sh watch [flags] [--config.FIELD=VALUE ...] [-- PROGRAM_FLAGS ...]

For Spot TPUs: until WORKDIR/COMPLETED exists, re-creates the TPU when it is preempted or gone,
then runs setup and train again; training resumes from the latest checkpoint in WORKDIR. Takes
the flags of create, setup and train; runs create's compile check once, at the start." ;;
    *)
      cat <<'TEXT'
usage: tpu.sh SUBCOMMAND [flags]

ELECTRA pre-training on Cloud TPU VMs (single host or pod); walkthrough in launch/README.md.

subcommands:
  create   create the TPU VM or a queued resource (spot, preemptible or reserved)
  setup    on every worker: this repository at your commit, installed with jax[tpu]
  train    start pre-training on all workers, detached, one log per worker
  status   TPU state and whether the job runs
  logs     show or follow the log of one worker or all
  stop     stop the job and free the TPU
  delete   delete the TPU
  watch    keep a Spot TPU job alive: re-create, set up and restart after preemption

Every subcommand takes --help and --dry-run (print the gcloud commands instead of running them);
flags default to TPU_* environment variables, e.g. TPU_ZONE=europe-west4-a.
TEXT
      return 0
      ;;
  esac
  echo
  echo "flags (the variable in brackets sets the default):"
  print_flags "$1"
}

cmd_create() {
  validate_common
  validate_create
  if [[ $FLAG_COMPILE_CHECK == true ]]; then validate_config; fi
  require_gcloud
  run_compile_check
  gcloud_create
  if [[ $FLAG_QUEUED == true && $FLAG_DRY_RUN == false ]]; then
    info "queued resource $FLAG_NAME requested: it is usable once 'tpu.sh status --queued' says ACTIVE"
  fi
}

# Ships HEAD as a git bundle (the workers may not reach where this repository is hosted), or
# lets them fetch --ref from --repo; then runs the setup script on every worker.
cmd_setup() {
  validate_common
  validate_setup
  local commit='' ref expected='' bundle_local='' bundle_remote=''
  if [[ -z $FLAG_REPO || -z $FLAG_REF ]]; then
    commit=$(git -C "$REPO_ROOT" rev-parse --verify -q HEAD) ||
      usage_error "$REPO_ROOT is not a git checkout with a commit: pass --repo=URL --ref=COMMIT"
  fi
  require_gcloud
  if [[ -n $FLAG_REPO ]]; then
    ref=${FLAG_REF:-$commit}
    if [[ $ref =~ ^[0-9a-f]{40}$ ]]; then expected=$ref; fi
    if [[ -z $FLAG_REF && -z $(git -C "$REPO_ROOT" branch -r --contains "$commit" 2>/dev/null) ]]; then
      warn "commit ${commit:0:12} is on no remote branch here: push it, or the workers cannot fetch it"
    fi
  else
    ref=HEAD
    expected=$commit
    if [[ -n $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no) ]]; then
      warn "uncommitted changes are not shipped: the workers get commit ${commit:0:12}"
    fi
    bundle_local=${TMPDIR:-/tmp}/electra-jax-$commit.bundle
    bundle_remote=$FLAG_REMOTE_DIR.bundle
    if [[ $FLAG_DRY_RUN == false ]]; then
      # shellcheck disable=SC2064  # the path is fixed now
      trap "rm -f '$bundle_local'" EXIT
    fi
    run git -C "$REPO_ROOT" bundle create -q "$bundle_local" HEAD
    gcloud_scp_to_all "$bundle_local" "$bundle_remote"
  fi
  gcloud_ssh all "$(remote_setup_script "$FLAG_REPO" "$ref" "$expected" "$bundle_remote")"
}

cmd_train() {
  validate_common
  validate_train
  require_gcloud
  local job_env=() variable
  # Passed-through variables first, so that an explicit --env wins.
  for variable in $FLAG_PASSTHROUGH; do
    if [[ -n ${!variable:-} ]]; then job_env+=("$variable=${!variable}"); fi
  done
  job_env+=(${ENV_ASSIGNMENTS[@]+"${ENV_ASSIGNMENTS[@]}"})
  gcloud_ssh all "$(remote_train_script "${#job_env[@]}" ${job_env[@]+"${job_env[@]}"} \
    "--config=$FLAG_CONFIG" "--workdir=$FLAG_WORKDIR" ${CONFIG_OVERRIDES[@]+"${CONFIG_OVERRIDES[@]}"})"
}

cmd_status() {
  validate_common
  if [[ -n $FLAG_WORKDIR ]]; then validate_workdir ""; fi
  require_gcloud
  read_tpu_state READY
  if [[ $TPU_STATE == NOT_FOUND ]]; then
    die "there is no TPU $FLAG_NAME in $FLAG_ZONE${FLAG_PROJECT:+ (project $FLAG_PROJECT)}"
  fi
  if [[ $FLAG_QUEUED == true ]]; then info "queued resource $FLAG_NAME is $TPU_STATE"; fi
  if [[ $FLAG_QUEUED == false || $TPU_STATE == ACTIVE ]]; then gcloud_describe; fi
  if [[ $TPU_STATE == READY || $TPU_STATE == ACTIVE ]]; then
    gcloud_ssh all "$(remote_status_script)"
  fi
  if [[ $FLAG_WORKDIR == gs://* ]]; then
    if training_completed; then
      info "training finished: ${FLAG_WORKDIR%/}/COMPLETED exists"
    else
      info "training has not finished: no ${FLAG_WORKDIR%/}/COMPLETED yet"
    fi
  fi
}

cmd_logs() {
  validate_common
  validate_worker
  validate_count lines "$FLAG_LINES"
  require_gcloud
  local prefix=false
  # shellcheck disable=SC2153  # FLAG_WORKER is set by parse_flags
  if [[ $FLAG_WORKER == all ]]; then prefix=true; fi
  gcloud_ssh "$FLAG_WORKER" "$(remote_logs_script "$prefix")"
}

cmd_stop() {
  validate_common
  validate_count grace "$FLAG_GRACE"
  require_gcloud
  gcloud_ssh all "$(remote_stop_script)"
}

cmd_delete() {
  validate_common
  require_gcloud
  gcloud_delete
}

main() {
  if (($# == 0)); then
    usage >&2
    exit 2
  fi
  case $1 in
    -h | --help | help)
      usage
      exit 0
      ;;
  esac
  SUBCOMMAND=$1
  shift
  flags_of "$SUBCOMMAND" >/dev/null ||
    usage_error "unknown subcommand '$SUBCOMMAND'; one of: create setup train status logs stop delete watch"
  parse_flags "$SUBCOMMAND" "$@"
  "cmd_$SUBCOMMAND"
}

main "$@"
