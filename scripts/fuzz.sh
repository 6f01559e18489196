#!/usr/bin/env bash
# Builds and runs the libFuzzer harness delegate/fuzz/payload_fuzzer.cpp (payload and codebook
# parsing + validation, then one kan_forward) with Debian's clang, ASan and UBSan.
#
#   scripts/fuzz.sh --seconds 30          run for 30 s (what npm test does)
#   scripts/fuzz.sh --runs 10000000       run 10,000,000 executions
#   options: --seed S (libFuzzer's seed, default 1), --corpus DIR (default: a fresh copy of
#            the seeds under build/fuzz/run-corpus), --max-len BYTES (default 8192)
#
# Seeds: real payloads + codebooks of tiny exported models, written by the project's Python
# writer (delegate/fuzz/make_corpus.py) into build/fuzz/seeds, remade when the writer, the
# schema or make_corpus.py change. Crashing inputs land in build/fuzz/crashes/.
# Exit status: 0 when no crash, 1 when libFuzzer found one, 2 on a setup problem. The last
# line is `fuzz: N executions in T s, C crashes`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${LUTHAM_PYTHON:-$root/.venv/bin/python}
out=$root/build/fuzz
seconds=
runs=
seed=1
corpus=
max_len=8192
die() { echo "fuzz: $*" >&2; exit 2; }
log() { echo "[lutham fuzz] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=${2:-}; shift 2 ;;
    --runs) runs=${2:-}; shift 2 ;;
    --seed) seed=${2:-}; shift 2 ;;
    --corpus) corpus=${2:-}; shift 2 ;;
    --max-len) max_len=${2:-}; shift 2 ;;
    *) die "unknown argument '$1' (see the header of scripts/fuzz.sh)" ;;
  esac
done
for v in seconds runs seed max_len; do
  val=${!v}
  if [ -n "$val" ] && ! [[ "$val" =~ ^[0-9]+$ ]]; then die "--${v/_/-} must be a non-negative integer, got '$val'"; fi
done
[ -n "$seconds$runs" ] || die "give --seconds T or --runs N"

command -v clang++ >/dev/null || die "no clang++: apt-get install clang libclang-rt-14-dev"
resource=$(clang++ -print-resource-dir)
ls "$resource"/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 ||
  die "clang has no libFuzzer runtime in $resource: apt-get install libclang-rt-14-dev"
[ -x "$py" ] || die "no Python at $py (run npm run setup first, or set LUTHAM_PYTHON)"
[ -f /usr/include/flatbuffers/flatbuffers.h ] || die "flatbuffers headers missing: apt-get install libflatbuffers-dev"
mkdir -p "$out"

# Build (again only when a source changed). -ffp-contract=off as in the real build. Every
# kernel variant of the real build is compiled in (on x86-64 the AVX2 and AVX-512 ones, each
# with its ISA flags on its own file as CMake does); the harness runs each one the CPU supports
# and compares them.
bin=$out/payload_fuzzer
sources=("$root/delegate/fuzz/payload_fuzzer.cpp" "$root/delegate/runtime/payload.cpp" "$root/delegate/runtime/crc32.cpp"
         "$root/delegate/runtime/kan_kernel.cpp" "$root/delegate/runtime/kan_kernel_generic.cpp")
isa_sources=()
isa_flags=()  # per source, as CMake sets them
isa_defines=()
if [ "$(uname -m)" = x86_64 ]; then
  isa_sources+=("$root/delegate/runtime/kan_kernel_avx2.cpp" "$root/delegate/runtime/kan_kernel_avx512.cpp")
  isa_flags+=("-mavx2 -mfma" "-mavx512f -mavx512bw -mavx512vl -mfma")
  isa_defines+=(-DLUTHAM_HAVE_AVX2 -DLUTHAM_HAVE_AVX512)
fi
headers=("$root"/delegate/runtime/*.h "$root"/delegate/runtime/generated/*.h)
rebuild=0
[ -x "$bin" ] || rebuild=1
for f in "${sources[@]}" "${isa_sources[@]}" "${headers[@]}" "$0"; do [ "$f" -nt "$bin" ] && rebuild=1; done
if [ $rebuild = 1 ]; then
  log "building $bin with $(clang++ --version | head -1)"
  flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -ffp-contract=off -fsanitize=fuzzer,address,undefined
         -fno-sanitize-recover=all -I "$root/delegate/runtime" "${isa_defines[@]}")
  objects=()
  for n in "${!isa_sources[@]}"; do
    src=${isa_sources[$n]}
    obj=$out/$(basename "$src" .cpp).o
    # shellcheck disable=SC2086  # the ISA flags are words
    clang++ "${flags[@]/-fsanitize=fuzzer,address,undefined/-fsanitize=fuzzer-no-link,address,undefined}" \
      ${isa_flags[$n]} -c "$src" -o "$obj"
    objects+=("$obj")
  done
  clang++ "${flags[@]}" "${sources[@]}" "${objects[@]}" -o "$bin.tmp"
  mv "$bin.tmp" "$bin"
fi


# Seeds from the Python writer, remade when what writes them changed.
seeds=$out/seeds
stamp=$(cat "$root/delegate/fuzz/make_corpus.py" "$root/py_bridge/lutham/lower/serialization/payload.py" \
  "$root/schema/lutham.fbs" | sha256sum | cut -c1-64)
if [ "$(cat "$seeds/.stamp" 2>/dev/null || true)" != "$stamp" ]; then
  log "writing seeds into $seeds (tiny models through the Python writer)"
  rm -rf "$seeds.tmp"
  PYTHONPATH="$root/py_bridge${PYTHONPATH:+:$PYTHONPATH}" "$py" "$root/delegate/fuzz/make_corpus.py" "$seeds.tmp"
  echo "$stamp" > "$seeds.tmp/.stamp"
  rm -rf "$seeds"
  mv "$seeds.tmp" "$seeds"
fi

if [ -z "$corpus" ]; then
  corpus=$out/run-corpus
  rm -rf "$corpus"
fi
mkdir -p "$corpus" "$out/crashes"
cp -n "$seeds"/[0-9a-f]* "$corpus"/ 2>/dev/null || true

limit=()
[ -n "$runs" ] && limit+=("-runs=$runs")
[ -n "$seconds" ] && limit+=("-max_total_time=$seconds")
log "running: $bin ${limit[*]} -seed=$seed -max_len=$max_len $corpus"
logfile=$out/last-run.log
SECONDS=0
set +e
"$bin" "${limit[@]}" -seed="$seed" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$out/crashes/" "$corpus" 2>"$logfile"
status=$?
set -e
elapsed=$SECONDS
# On success the end of the log (final stats); on a crash the report, without progress lines.
if [ $status -eq 0 ]; then tail -n 8 "$logfile" >&2; else grep -v '^#[0-9]' "$logfile" | tail -n 80 >&2; fi
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logfile" | tail -1 | grep -o '[0-9]*$' || true)
crashes=$( [ $status -eq 0 ] && echo 0 || echo 1 )
# The harness names the kernel variants it runs and those the CPU cannot (skipped).
grep -m1 '^payload_fuzzer: kernel variants' "$logfile" >&2 || true
printf 'fuzz: %s executions in %s s, %s crashes (log: %s)\n' "${execs:-?}" "$elapsed" "$crashes" "$logfile"
[ $status -eq 0 ] || exit 1
