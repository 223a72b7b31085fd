# shellcheck shell=bash
# Input checks of tpu.sh. They all run before the first gcloud call, so that a typo costs a
# clear message instead of a half-created TPU.

# Prints the generation (v2, v3, v4, v5e, v5p, v6e) of accelerator type $1, or fails.
accelerator_generation() {
  local type=$1 count=${1##*-}
  case $type in
    v2-8 | v2-32 | v2-128 | v2-256 | v2-512) echo v2 ;;
    v3-8 | v3-32 | v3-64 | v3-128 | v3-256 | v3-512 | v3-1024 | v3-2048) echo v3 ;;
    v5litepod-1 | v5litepod-4 | v5litepod-8 | v5litepod-16 | v5litepod-32 | v5litepod-64 | \
      v5litepod-128 | v5litepod-256) echo v5e ;;
    v6e-1 | v6e-4 | v6e-8 | v6e-16 | v6e-32 | v6e-64 | v6e-128 | v6e-256) echo v6e ;;
    v4-* | v5p-*)
      # v4 and v5p count TensorCores, two per chip, four chips per host: any multiple of 8.
      [[ $count =~ ^[1-9][0-9]*$ ]] && ((count % 8 == 0)) || return 1
      echo "${type%%-*}"
      ;;
    *) return 1 ;;
  esac
}

# Prints the number of TPU VM hosts (workers) of accelerator type $1 (already validated).
accelerator_hosts() {
  local count=${1##*-}
  case $(accelerator_generation "$1") in
    # v5e and v6e count chips: up to 8 on one host, 4 per host in larger slices.
    v5e | v6e) if ((count <= 8)); then echo 1; else echo $((count / 4)); fi ;;
    *) echo $((count / 8)) ;; # 8 TensorCores per host
  esac
}

# Prints the default TPU software version of generation $1 (see cloud.google.com/tpu/docs/runtimes).
default_runtime_version() {
  case $1 in
    v2 | v3 | v4) echo tpu-ubuntu2204-base ;;
    v5e) echo v2-alpha-tpuv5-lite ;;
    v5p) echo v2-alpha-tpuv5 ;;
    v6e) echo v2-alpha-tpuv6e ;;
  esac
}

validate_accelerator() {
  local type=$1
  accelerator_generation "$type" >/dev/null && return 0
  case $type in
    v5e-* | v5lite-*) usage_error "unknown accelerator type '$type': Cloud TPU calls v5e slices v5litepod-N, e.g. --accelerator=v5litepod-${type##*-}" ;;
    *) usage_error "unknown accelerator type '$type'; known types: v2-{8,32,128,256,512}, v3-{8,32,64,...,2048}, v4-N and v5p-N (N a multiple of 8, e.g. v4-32), v5litepod-{1,4,8,...,256}, v6e-{1,4,8,...,256}" ;;
  esac
}

validate_common() {
  [[ $FLAG_NAME =~ ^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$ ]] ||
    usage_error "--name='$FLAG_NAME' is not a valid TPU name: lower-case letters, digits and '-', starting with a letter"
  [[ -n $FLAG_ZONE ]] || usage_error "no zone: pass --zone=ZONE or set TPU_ZONE (e.g. europe-west4-a for v3, us-central2-b for v4)"
  [[ $FLAG_ZONE =~ ^[a-z]+-[a-z]+[0-9]+-[a-z]$ ]] || usage_error "--zone='$FLAG_ZONE' does not look like a zone such as us-central2-b"
  [[ -z $FLAG_PROJECT || $FLAG_PROJECT =~ ^[a-z][-a-z0-9:.]{3,}[a-z0-9]$ ]] || usage_error "--project='$FLAG_PROJECT' is not a project id"
  validate_accelerator "$FLAG_ACCELERATOR"
}

validate_create() {
  local capacity=0
  [[ $FLAG_SPOT == true ]] && capacity=$((capacity + 1))
  [[ $FLAG_PREEMPTIBLE == true ]] && capacity=$((capacity + 1))
  [[ $FLAG_RESERVED == true ]] && capacity=$((capacity + 1))
  ((capacity <= 1)) || usage_error "--spot, --preemptible and --reserved exclude each other: pick one"
  if [[ $FLAG_QUEUED == true && $FLAG_PREEMPTIBLE == true ]]; then
    usage_error "queued resources have no --preemptible: use --spot"
  fi
  [[ -z $FLAG_RUNTIME_VERSION || $FLAG_RUNTIME_VERSION =~ ^[-a-z0-9.]+$ ]] ||
    usage_error "--runtime-version='$FLAG_RUNTIME_VERSION' is not a TPU software version such as tpu-ubuntu2204-base"
}

validate_setup() {
  if [[ -z $FLAG_REPO && -n $FLAG_REF ]]; then
    usage_error "--ref needs --repo: without it, setup ships the HEAD of your checkout (check out the commit you want)"
  fi
  validate_remote_dir
  [[ $FLAG_PYTHON =~ ^python3\.[0-9]+$ ]] || usage_error "--python='$FLAG_PYTHON': give a versioned interpreter such as python3.11"
  local minor=${FLAG_PYTHON#python3.}
  ((minor >= 11)) || usage_error "--python=$FLAG_PYTHON: the package needs Python >= 3.11"
}

validate_remote_dir() {
  [[ $FLAG_REMOTE_DIR =~ ^[A-Za-z0-9._][-A-Za-z0-9._/]*$ && $FLAG_REMOTE_DIR != */ ]] ||
    usage_error "--remote-dir='$FLAG_REMOTE_DIR' must be a relative path such as electra-jax"
}

# Resolves FLAG_CONFIG to a path relative to the repository root (short names like `base` mean
# configs/base.py) and checks that it exists: the workers run the same commit, so it must be here.
validate_config() {
  local file
  if [[ $FLAG_CONFIG =~ ^[a-z0-9_]+$ ]]; then FLAG_CONFIG=configs/$FLAG_CONFIG.py; fi
  file=${FLAG_CONFIG%%:*} # ml_collections allows `file.py:argument`
  [[ $file != /* ]] || usage_error "--config=$FLAG_CONFIG: give a path relative to the repository root, e.g. configs/base.py"
  [[ -f $REPO_ROOT/$file ]] || usage_error "--config=$FLAG_CONFIG: no such file in $REPO_ROOT (see configs/ for the choices)"
}

# Checks --workdir: required; a gs:// URL on a pod (each host writes its own part of a
# checkpoint) and for watch (a re-created TPU has a blank disk).
validate_workdir() {
  local why=$1
  [[ -n $FLAG_WORKDIR ]] || usage_error "no workdir: pass --workdir=gs://BUCKET/RUN or set TPU_WORKDIR"
  if [[ $FLAG_WORKDIR == gs://* ]]; then
    [[ $FLAG_WORKDIR =~ ^gs://[a-z0-9][-_.a-z0-9]*[a-z0-9](/[^[:space:]]*)?$ ]] ||
      usage_error "--workdir='$FLAG_WORKDIR' is not a valid gs:// URL"
  elif [[ -n $why ]]; then
    usage_error "--workdir='$FLAG_WORKDIR' must be a gs:// URL $why"
  elif [[ $FLAG_WORKDIR =~ [[:space:]] ]]; then
    usage_error "--workdir='$FLAG_WORKDIR' contains whitespace"
  else
    warn "workdir $FLAG_WORKDIR is on the TPU VM's own disk: it is lost when the TPU is deleted or preempted"
  fi
}

validate_train() {
  local hosts why=
  validate_config
  hosts=$(accelerator_hosts "$FLAG_ACCELERATOR")
  ((hosts == 1)) || why="on a $hosts-host $FLAG_ACCELERATOR, where every host writes the same checkpoint"
  validate_workdir "$why"
  validate_remote_dir
  local assignment
  for assignment in ${ENV_ASSIGNMENTS[@]+"${ENV_ASSIGNMENTS[@]}"}; do
    [[ $assignment =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || usage_error "--env=$assignment: expected KEY=VALUE"
  done
  local variable
  for variable in $FLAG_PASSTHROUGH; do
    [[ $variable =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || usage_error "--passthrough: '$variable' is not a variable name"
  done
  for assignment in ${CONFIG_OVERRIDES[@]+"${CONFIG_OVERRIDES[@]}"}; do
    [[ $assignment == --* ]] || usage_error "program argument '$assignment' should be a flag such as --config.train.num_steps=1000"
  done
}

validate_count() {
  local flag=$1 value=$2
  [[ $value =~ ^[0-9]+$ ]] || usage_error "--$flag=$value: expected a whole number"
}

validate_worker() {
  local hosts
  # shellcheck disable=SC2153  # FLAG_WORKER is set by parse_flags
  [[ $FLAG_WORKER == all ]] && return 0
  hosts=$(accelerator_hosts "$FLAG_ACCELERATOR")
  if [[ $FLAG_WORKER =~ ^[0-9]+$ ]] && ((FLAG_WORKER < hosts)); then return 0; fi
  usage_error "--worker=$FLAG_WORKER: use all or a worker number from 0 to $((hosts - 1)) ($FLAG_ACCELERATOR has $hosts)"
}
