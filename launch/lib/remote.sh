# shellcheck shell=bash
# Scripts that tpu.sh runs on every TPU VM worker (via `gcloud ... ssh --command`). Each is a
# prelude of quoted variable assignments followed by a fixed body, so that no user value is
# ever spliced into code. Layout on a worker, for --remote-dir=electra-jax:
#   ~/electra-jax        the checkout, at the caller's commit
#   ~/electra-jax-venv   the virtual environment with the package and jax[tpu]
#   ~/electra-jax-logs   train-worker<N>.log (one per worker) and train.pid

remote_assign() { printf '%s=%s\n' "$1" "$(shell_quote "$2")"; }

remote_array() {
  local name=$1 word
  shift
  printf '%s=(' "$name"
  for word in "$@"; do printf ' %s' "$(shell_quote "$word")"; done
  printf ' )\n'
}

remote_prelude() {
  echo '# shellcheck disable=SC2034  # not every script uses every path'
  echo 'set -euo pipefail'
  # shellcheck disable=SC2016  # $HOME is the worker's, expanded there
  printf 'repo_dir="$HOME"/%s\n' "$(shell_quote "$FLAG_REMOTE_DIR")"
  cat <<'BODY'
venv_dir=$repo_dir-venv
log_dir=$repo_dir-logs
pid_file=$log_dir/train.pid
# The index of this worker in the slice, from the TPU VM metadata server (else the hostname).
worker=$(curl -sf -m 5 -H "Metadata-Flavor: Google" \
  http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number ||
  hostname)
# A zombie still answers kill -0, so ask ps whether the process really runs.
is_alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}
job_pid() { [[ -f $pid_file ]] && cat "$pid_file"; }
BODY
}

remote_setup_script() {
  local repo_url=$1 ref=$2 expected_commit=$3 bundle=$4
  remote_prelude
  remote_assign python "$FLAG_PYTHON"
  remote_assign jax_requirement "$FLAG_JAX"
  remote_assign repo_url "$repo_url"
  remote_assign ref "$ref"
  remote_assign expected_commit "$expected_commit"
  remote_assign bundle "$bundle"
  cat <<'BODY'
# Ubuntu 22.04 TPU images ship Python 3.10; the package needs 3.11 or later.
if ! command -v "$python" >/dev/null 2>&1; then
  echo "worker $worker: installing $python"
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$python" "$python-venv"
fi
if [[ -n $repo_url ]]; then
  [[ -d $repo_dir/.git ]] || git clone -q "$repo_url" "$repo_dir"
  git -C "$repo_dir" remote set-url origin "$repo_url"
  git -C "$repo_dir" fetch -q origin "$ref"
else
  [[ -d $repo_dir/.git ]] || git init -q "$repo_dir"
  git -C "$repo_dir" fetch -q "$HOME/$bundle" "$ref"
  rm -f "$HOME/$bundle"
fi
git -C "$repo_dir" checkout -q --force --detach FETCH_HEAD
commit=$(git -C "$repo_dir" rev-parse HEAD)
if [[ -n $expected_commit && $commit != "$expected_commit" ]]; then
  echo "worker $worker: checked out $commit, expected $expected_commit" >&2
  exit 1
fi
# A venv left by an older Python is rebuilt rather than patched.
if [[ -x $venv_dir/bin/python ]] &&
  ! "$venv_dir/bin/python" -c "import sys; sys.exit(sys.version_info < (3, 11))"; then
  rm -rf "$venv_dir"
fi
[[ -x $venv_dir/bin/python ]] || "$python" -m venv "$venv_dir"
"$venv_dir/bin/python" -m pip install -q --upgrade pip
# One resolve for both, so that pip picks a jax that the package and libtpu agree on.
"$venv_dir/bin/python" -m pip install -q -e "$repo_dir" "$jax_requirement"
jax_version=$("$venv_dir/bin/python" -c "import electra_jax, jax; print(jax.__version__)")
echo "worker $worker: ready at commit ${commit:0:12} with jax $jax_version"
BODY
}

remote_train_script() {
  local -a env_assignments=("${@:2:$1}") program_args=("${@:$(($1 + 2))}")
  remote_prelude
  remote_array job_env ${env_assignments[@]+"${env_assignments[@]}"}
  remote_array job_args "${program_args[@]}"
  cat <<'BODY'
cd "$repo_dir" 2>/dev/null && [[ -x $venv_dir/bin/python ]] || {
  echo "worker $worker: no checkout or venv under $repo_dir: run tpu.sh setup first" >&2
  exit 1
}
mkdir -p "$log_dir"
if pid=$(job_pid) && is_alive "$pid"; then
  echo "worker $worker: training already runs (pid $pid): run tpu.sh stop first" >&2
  exit 1
fi
log_file=$log_dir/train-worker$worker.log
printf "==== %s commit %s: python -m electra_jax.main %s\n" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(git rev-parse --short HEAD)" "${job_args[*]}" >>"$log_file"
# setsid + nohup + redirected stdio: the job outlives the ssh session and holds none of its
# file descriptors, so that gcloud returns at once. Not a process group leader here, setsid
# does not fork: $! is the pid of the job and its process group id.
setsid nohup env "${job_env[@]}" "$venv_dir/bin/python" -m electra_jax.main "${job_args[@]}" \
  >>"$log_file" 2>&1 </dev/null &
echo "$!" >"$pid_file"
echo "worker $worker: training started (pid $!), log $log_file"
BODY
}

remote_stop_script() {
  remote_prelude
  remote_assign grace "$FLAG_GRACE"
  cat <<'BODY'
if pid=$(job_pid) && is_alive "$pid"; then
  echo "worker $worker: stopping training (pid $pid); it saves a checkpoint on SIGTERM"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for ((tick = 0; tick < grace * 5; tick++)); do
    is_alive "$pid" || break
    sleep 0.2
  done
  if is_alive "$pid"; then
    echo "worker $worker: still running after ${grace}s: killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  fi
fi
rm -f "$pid_file"
# Free the TPU: a process that still holds the chips (a job started by hand, a stray eval)
# makes the next job fail with "TPU in use". v2-v4 chips are /dev/accel*, later ones vfio.
shopt -s nullglob
devices=(/dev/accel* /dev/vfio/[0-9]*)
if ((${#devices[@]})); then
  for holder in $(sudo fuser "${devices[@]}" 2>/dev/null || true); do
    echo "worker $worker: killing pid $holder, which holds the TPU"
    sudo kill -KILL "$holder" || true
  done
fi
sudo rm -f /tmp/libtpu_lockfile
echo "worker $worker: stopped"
BODY
}

# One line per worker: "worker N: training running (pid P) ..." or "worker N: training stopped".
remote_status_script() {
  remote_prelude
  cat <<'BODY'
log_file=$log_dir/train-worker$worker.log
last_line=$(tail -n 1 "$log_file" 2>/dev/null || true)
if pid=$(job_pid) && is_alive "$pid"; then
  echo "worker $worker: training running (pid $pid); last log line: ${last_line:-none}"
else
  echo "worker $worker: training stopped; last log line: ${last_line:-none}"
fi
BODY
}

remote_logs_script() {
  local prefix=$1
  remote_prelude
  remote_assign lines "$FLAG_LINES"
  remote_assign follow "$FLAG_FOLLOW"
  remote_assign prefix "$prefix"
  cat <<'BODY'
log_file=$log_dir/train-worker$worker.log
if [[ ! -f $log_file ]]; then
  echo "worker $worker: no log at $log_file yet (has tpu.sh train run?)" >&2
  exit 1
fi
tail_args=(-n "$lines")
if [[ $follow == true ]]; then tail_args+=(-F); fi
if [[ $prefix == true ]]; then
  # Lines of all workers arrive interleaved: label each with its worker.
  tail "${tail_args[@]}" "$log_file" | sed -u "s/^/[worker $worker] /"
else
  tail "${tail_args[@]}" "$log_file"
fi
BODY
}
