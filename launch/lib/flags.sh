# shellcheck shell=bash
# Flags of tpu.sh. One table gives each flag its environment variable, default and help, so that
# parsing, defaults and --help cannot drift apart. A flag --foo-bar is stored in FLAG_FOO_BAR.
# (Plain bash 3.2 constructs, no associative arrays: macOS still ships that bash.)

# name|ENVIRONMENT_VARIABLE|default|kind|help     (kind: value or bool)
readonly FLAG_TABLE='name|TPU_NAME|electra-jax|value|TPU VM name (also the queued resource name)
zone|TPU_ZONE||value|zone, e.g. europe-west4-a (v3), us-central2-b (v4), us-east5-a (v5p)
project|TPU_PROJECT||value|Google Cloud project (empty: the gcloud default)
accelerator|TPU_ACCELERATOR|v3-8|value|v2-8..v2-512, v3-8..v3-2048, v4-N, v5litepod-N, v5p-N, v6e-N
queued|TPU_QUEUED|false|bool|the TPU is a queued resource (create/delete/watch it as one)
runtime-version|TPU_RUNTIME_VERSION||value|TPU software version (empty: the default of the generation)
spot|TPU_SPOT|false|bool|Spot capacity: cheap, can be preempted at any time
preemptible|TPU_PREEMPTIBLE|false|bool|legacy preemptible TPU VM (not with --queued; prefer --spot)
reserved|TPU_RESERVED|false|bool|use the reservation of the project
network|TPU_NETWORK||value|VPC network (empty: default)
subnetwork|TPU_SUBNETWORK||value|VPC subnetwork (empty: default)
repo|TPU_REPO||value|git URL the workers clone (empty: ship your checkout'"'"'s HEAD as a git bundle)
ref|TPU_REF||value|with --repo: commit, tag or branch to check out (empty: your HEAD commit)
remote-dir|TPU_REMOTE_DIR|electra-jax|value|checkout on each worker, relative to ~; venv and logs sit beside it
python|TPU_PYTHON|python3.11|value|Python (>= 3.11) for the venv; installed with apt if missing
jax|TPU_JAX|jax[tpu]|value|pip requirement for the TPU build of jax
config|TPU_CONFIG|configs/small.py|value|config file in this repository (or just its name: small, base, large)
workdir|TPU_WORKDIR||value|checkpoints and TensorBoard logs; gs:// for pods and for watch
env|||list|KEY=VALUE set for the training job (repeatable)
passthrough|TPU_ENV_PASSTHROUGH|TFDS_DATA_DIR XLA_FLAGS LIBTPU_INIT_ARGS TF_CPP_MIN_LOG_LEVEL JAX_COMPILATION_CACHE_DIR|value|variables copied from your environment to the job when set
worker|TPU_WORKER|0|value|worker number, or all
lines|TPU_LOG_LINES|100|value|log lines to show
follow|TPU_LOG_FOLLOW|true|bool|keep following the log (--no-follow: print and exit)
grace|TPU_STOP_GRACE|120|value|seconds to wait after SIGTERM (the job saves a checkpoint) before SIGKILL
interval|TPU_WATCH_INTERVAL|120|value|seconds between checks
max-restarts|TPU_MAX_RESTARTS|3|value|restarts of a job that died on a healthy TPU before giving up
compile-check|TPU_COMPILE_CHECK|true|bool|first compile --config for the accelerator on this machine; stop if it does not fit
check-python|TPU_CHECK_PYTHON|python3|value|Python that runs the compile check, with this package and its [tpu] extra (libtpu)
dry-run|TPU_DRY_RUN|false|bool|print the gcloud commands instead of running them'

readonly COMMON_FLAGS='name zone project accelerator queued dry-run'
readonly CREATE_FLAGS='runtime-version spot preemptible reserved network subnetwork compile-check check-python'
readonly SETUP_FLAGS='repo ref remote-dir python jax'
readonly TRAIN_FLAGS='config workdir env passthrough'

# Prints the flags that subcommand $1 accepts.
flags_of() {
  case $1 in
    create) echo "$COMMON_FLAGS $CREATE_FLAGS config" ;; # config: for the compile check
    setup) echo "$COMMON_FLAGS $SETUP_FLAGS" ;;
    train) echo "$COMMON_FLAGS $TRAIN_FLAGS remote-dir" ;;
    status) echo "$COMMON_FLAGS workdir remote-dir" ;;
    logs) echo "$COMMON_FLAGS worker lines follow remote-dir" ;;
    stop) echo "$COMMON_FLAGS grace remote-dir" ;;
    delete) echo "$COMMON_FLAGS" ;;
    watch) echo "$COMMON_FLAGS $CREATE_FLAGS $SETUP_FLAGS $TRAIN_FLAGS grace interval max-restarts" ;;
    *) return 1 ;;
  esac
}

# The table as parallel arrays, read once (lookups then need no subshells: watch runs tpu.sh a lot).
FLAG_NAMES=() FLAG_ENVS=() FLAG_DEFAULTS=() FLAG_KINDS=() FLAG_HELPS=() FLAG_VARS=()
while IFS='|' read -r name env_name default kind help; do
  FLAG_NAMES+=("$name") FLAG_ENVS+=("$env_name") FLAG_DEFAULTS+=("$default") FLAG_KINDS+=("$kind")
  FLAG_HELPS+=("$help")
done <<<"$FLAG_TABLE"
while IFS= read -r name; do FLAG_VARS+=("FLAG_$name"); done < <(
  printf '%s\n' "${FLAG_NAMES[@]}" | tr 'abcdefghijklmnopqrstuvwxyz-' 'ABCDEFGHIJKLMNOPQRSTUVWXYZ_')
unset name env_name default kind help

# Sets FLAG_I to the table index of flag $1; fails for an unknown flag.
flag_index() {
  for ((FLAG_I = 0; FLAG_I < ${#FLAG_NAMES[@]}; FLAG_I++)); do
    [[ ${FLAG_NAMES[FLAG_I]} == "$1" ]] && return 0
  done
  return 1
}

# Sets BOOL to true or false for a boolean such as 1, yes, True or off; fails on anything else.
to_bool() {
  case $1 in
    1 | [Tt]rue | TRUE | [Yy]es | YES | [Oo]n | ON) BOOL=true ;;
    0 | [Ff]alse | FALSE | [Nn]o | NO | [Oo]ff | OFF | '') BOOL=false ;;
    *) return 1 ;;
  esac
}

# Parses the flags of subcommand $1 into FLAG_* (defaults from the environment first), the
# repeated --env into ENV_ASSIGNMENTS and --config.* plus everything after `--` into
# CONFIG_OVERRIDES. Unknown flags and malformed values stop the script before any gcloud call.
parse_flags() {
  local cmd=$1 allowed name value env_name arg has_value
  shift
  allowed=" $(flags_of "$cmd") "
  ENV_ASSIGNMENTS=()
  CONFIG_OVERRIDES=()
  for name in $allowed; do
    flag_index "$name"
    [[ ${FLAG_KINDS[FLAG_I]} == list ]] && continue
    env_name=${FLAG_ENVS[FLAG_I]}
    value=${!env_name:-${FLAG_DEFAULTS[FLAG_I]}}
    if [[ ${FLAG_KINDS[FLAG_I]} == bool ]]; then
      to_bool "$value" || usage_error "$env_name='$value' is not a boolean (use true or false)"
      value=$BOOL
    fi
    printf -v "${FLAG_VARS[FLAG_I]}" '%s' "$value"
  done
  while (($#)); do
    arg=$1
    shift
    case $arg in
      -h | --help)
        usage "$cmd"
        exit 0
        ;;
      --)
        [[ $cmd == train || $cmd == watch ]] || usage_error "'$cmd' takes no program arguments after --"
        CONFIG_OVERRIDES+=("$@")
        break
        ;;
      --config.*)
        [[ $cmd == train || $cmd == watch || $cmd == create ]] ||
          usage_error "config overrides ($arg) belong to 'train', 'watch' or 'create' (its compile check), not '$cmd'"
        [[ $arg == *=* ]] || usage_error "config override '$arg' needs a value: $arg=VALUE"
        CONFIG_OVERRIDES+=("$arg")
        ;;
      --no-*)
        name=${arg#--no-}
        [[ $allowed == *" $name "* ]] && flag_index "$name" && [[ ${FLAG_KINDS[FLAG_I]} == bool ]] ||
          usage_error "unknown flag $arg for '$cmd' (see: tpu.sh $cmd --help)"
        printf -v "${FLAG_VARS[FLAG_I]}" '%s' false
        ;;
      --*)
        name=${arg#--}
        has_value=false
        if [[ $name == *=* ]]; then
          value=${name#*=}
          name=${name%%=*}
          has_value=true
        fi
        [[ $allowed == *" $name "* ]] || usage_error "unknown flag --$name for '$cmd' (see: tpu.sh $cmd --help)"
        flag_index "$name"
        case ${FLAG_KINDS[FLAG_I]} in
          bool)
            if [[ $has_value == false ]]; then
              value=true
            elif to_bool "$value"; then
              value=$BOOL
            else
              usage_error "--$name=$value: use --$name, --no-$name, --$name=true or --$name=false"
            fi
            ;;
          *)
            if [[ $has_value == false ]]; then
              (($#)) || usage_error "--$name needs a value"
              value=$1
              shift
            fi
            ;;
        esac
        if [[ ${FLAG_KINDS[FLAG_I]} == list ]]; then
          ENV_ASSIGNMENTS+=("$value")
        else
          printf -v "${FLAG_VARS[FLAG_I]}" '%s' "$value"
        fi
        ;;
      *) usage_error "unexpected argument '$arg' for '$cmd' (see: tpu.sh $cmd --help)" ;;
    esac
  done
}

# Prints the flag list of subcommand $1 for --help, each with its variable and default.
print_flags() {
  local name spec
  for name in $(flags_of "$1"); do
    flag_index "$name"
    case ${FLAG_KINDS[FLAG_I]} in
      bool) spec="--[no-]$name" ;;
      list) spec="--$name=KEY=VALUE" ;;
      *) spec="--$name=VALUE" ;;
    esac
    printf '  %-24s %s\n' "$spec" "${FLAG_HELPS[FLAG_I]}"
    if [[ -n ${FLAG_ENVS[FLAG_I]} ]]; then
      printf '  %-24s   [$%s, default: %s]\n' '' "${FLAG_ENVS[FLAG_I]}" "${FLAG_DEFAULTS[FLAG_I]:-none}"
    fi
  done
}
