#!/usr/bin/env bash
# Every GPU measurement in one script, at most 8 minutes of wall time (docs/gpu.md).
#
#   bash benchmarks/gpu/check.sh OUTDIR [--device cuda] [--quick] [--no-install]
#        [--parts "env tests throughput memory options cifar mnist"] [--total SECONDS]
#        [--budget PART=SECONDS ...] [--set KEY=VALUE ...]
#
# Writes OUTDIR/gpu_<part>.json (each with the commit, the GPU and the torch version, via
# stochep.tools.results.write_json) and OUTDIR/<part>.log. Each part runs in its own process under
# its own time limit (`timeout`); a part that fails or runs out of time is recorded as such (with
# the rows it had written) and the next part still runs. The parts share the total budget
# (--total, default 470 s): a part never gets more than what is left.
#
#   --device cpu --quick   the same code paths on tiny workloads, on a CPU, in a few minutes
#   --no-install           skip `pip install --no-deps -e .` (already installed)
#   --set KEY=VALUE        config overrides for the training parts (cifar, mnist)
#
# Default per-part budgets (seconds; GPU / quick): env 20/30, tests 50/150, throughput 70/60,
# memory 70/90, options 50/40, cifar 140/90, mnist 60/60. A second run can give the long parts the whole
# budget, e.g. --parts "cifar mnist" --budget cifar=240 --budget mnist=220.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

usage() { sed -n '2,22p' "$0"; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac
OUT=$1; shift
DEVICE=cuda QUICK="" INSTALL=1 PARTS="env tests throughput memory options cifar mnist" TOTAL=470
SETS=() BUDGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --quick) QUICK=--quick; shift ;;
    --no-install) INSTALL=0; shift ;;
    --parts) PARTS=$2; shift 2 ;;
    --total) TOTAL=$2; shift 2 ;;
    --budget) BUDGETS+=("$2"); shift 2 ;;
    --set) SETS+=(--set "$2"); shift 2 ;;
    -h|--help) usage ;;
    *) echo "check.sh: unknown argument $1" >&2; usage ;;
  esac
done
PY=${PYTHON:-python}
command -v "$PY" >/dev/null 2>&1 || PY=python3
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export STOCHEP_RESULTS_DIR=$OUT
# the package's source wins even where the editable install could not be made
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
START=$SECONDS
echo "check.sh: device $DEVICE ${QUICK:-(full)}, parts: $PARTS, total budget ${TOTAL}s, out $OUT"

if [ "$INSTALL" = 1 ]; then
  # no network on the GPU machine: no build isolation (it would download setuptools), no deps
  if "$PY" -m pip install --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1; then
    echo "install: ok"
  else
    echo "install: failed (see $OUT/install.log); running from src/ through PYTHONPATH"
  fi
fi

budget_of() {  # default budget of part $1, then any --budget PART=S
  local part=$1 b
  if [ -n "$QUICK" ]; then
    case $part in env) b=30 ;; tests) b=150 ;; throughput) b=60 ;; memory) b=90 ;;
      options) b=40 ;; cifar) b=90 ;; mnist) b=60 ;; *) b=60 ;; esac
  else
    case $part in env) b=20 ;; tests) b=50 ;; throughput) b=70 ;; memory) b=70 ;;
      options) b=50 ;; cifar) b=140 ;; mnist) b=60 ;; *) b=60 ;; esac
  fi
  for kv in "${BUDGETS[@]+"${BUDGETS[@]}"}"; do
    [ "${kv%%=*}" = "$part" ] && b=${kv#*=}
  done
  echo "$b"
}

FAILED=()
for part in $PARTS; do
  want=$(budget_of "$part")
  left=$((TOTAL - (SECONDS - START)))
  b=$(( want < left ? want : left ))
  if [ "$b" -lt 10 ]; then
    echo "$part: skipped (total budget spent)"
    "$PY" benchmarks/gpu/check.py fail "$part" --out "$OUT" --device "$DEVICE" --rc 124 \
      --budget 0 >/dev/null 2>&1
    FAILED+=("$part(no time)")
    continue
  fi
  # the part keeps to its own budget; `timeout` is the hard stop a few seconds later
  inner=$(( b > 30 ? b - 8 : b * 3 / 4 ))
  extra=()
  case $part in cifar|mnist) extra=("${SETS[@]+"${SETS[@]}"}") ;; esac
  t0=$SECONDS
  timeout -k 10 "$b" "$PY" benchmarks/gpu/check.py "$part" --out "$OUT" --device "$DEVICE" \
    $QUICK --budget "$inner" "${extra[@]+"${extra[@]}"}" >"$OUT/$part.log" 2>&1
  rc=$?
  if [ "$rc" -ne 0 ]; then
    "$PY" benchmarks/gpu/check.py fail "$part" --out "$OUT" --device "$DEVICE" --rc "$rc" \
      --log "$OUT/$part.log" --budget "$b" >/dev/null 2>&1 \
      || echo "{\"part\": \"$part\", \"status\": \"failed\", \"returncode\": $rc}" \
         >"$OUT/gpu_$part.json"
    FAILED+=("$part(rc $rc)")
  fi
  echo "$part: rc $rc in $((SECONDS - t0))s (budget ${b}s) -> $OUT/gpu_$part.json"
done
echo "check.sh: done in $((SECONDS - START))s; failed: ${FAILED[*]:-none}"
echo "next: copy $OUT/gpu_*.json into benchmarks/results/ and commit them"
[ ${#FAILED[@]} -eq 0 ]
