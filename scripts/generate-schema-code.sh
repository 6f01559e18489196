#!/usr/bin/env bash
# Regenerates every FlatBuffers binding from its schema. The output is committed;
# test/ts/generated.test.ts checks that running this again gives the same bytes (for the TypeScript,
# Python and C++ trees alike).
#   OUT_DIR=/tmp/x scripts/generate-schema-code.sh   writes the tree under /tmp/x instead.
# TypeScript and Python use the executorch wheel's flatc (modern, `.js` import suffixes);
# C++ uses Debian's flatc 2.0.8 because the generated header must match the flatbuffers
# C++ headers it compiles against (libflatbuffers-dev 2.0.8; the wheel ships none).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT_DIR:-$root}
py=${LUTHAM_PYTHON:-$root/.venv/bin/python}
wheel_flatc=$(dirname "$py")/flatc
[ -x "$wheel_flatc" ] || { echo "generate: no flatc next to $py (install the venv: npm run setup)" >&2; exit 1; }
debian_flatc=/usr/bin/flatc
[ -x "$debian_flatc" ] || { echo "generate: $debian_flatc missing (apt-get install flatbuffers-compiler)" >&2; exit 1; }
et_schema=$("$py" -c 'import executorch.exir._serialize as s, os; print(os.path.dirname(s.__file__))')

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# TypeScript: LUTHAM payload, the .ptd (flat_tensor) schema and the .pte program schema
# (program last: its executorch-flatbuffer.ts index is the one kept).
"$wheel_flatc" --ts -o "$tmp/ts" "$root/schema/lutham.fbs"
et_ptd_schema=$("$py" -c 'import executorch.extension.flat_tensor.serialize as s, os; print(os.path.dirname(s.__file__))')
mkdir -p "$tmp/ptd"
cp "$et_ptd_schema/flat_tensor.fbs" "$et_ptd_schema/scalar_type.fbs" "$tmp/ptd/"
"$wheel_flatc" --ts --gen-all -o "$tmp/ts" "$tmp/ptd/flat_tensor.fbs"
cp "$et_schema/program.fbs" "$et_schema/scalar_type.fbs" "$tmp/"
"$wheel_flatc" --ts --gen-all -o "$tmp/ts" "$tmp/program.fbs"  # --gen-all: also scalar_type.fbs (Tensor imports ScalarType)
rm -rf "$out/ts/generated"; mkdir -p "$out/ts/generated"
cp -r "$tmp/ts/." "$out/ts/generated/"

# Python: namespace lutham.payload lands inside our package as lutham/payload/.
"$wheel_flatc" --python -o "$tmp/py" "$root/schema/lutham.fbs"
rm -rf "$out/py_bridge/lutham/payload"; mkdir -p "$out/py_bridge/lutham"
cp -r "$tmp/py/lutham/payload" "$out/py_bridge/lutham/payload"

# C++ header for the runtime.
"$debian_flatc" --cpp --scoped-enums -o "$tmp/cpp" "$root/schema/lutham.fbs"
mkdir -p "$out/delegate/runtime/generated"
cp "$tmp/cpp/lutham_generated.h" "$out/delegate/runtime/generated/lutham_generated.h"

# C++ headers of the .pte program schema for lutham_runner's own check of a program before
# ExecuTorch loads it (the wheel ships no program_generated.h).
"$debian_flatc" --cpp -o "$tmp/cpp" "$tmp/scalar_type.fbs" "$tmp/program.fbs"
mkdir -p "$out/delegate/runner/generated"
cp "$tmp/cpp/program_generated.h" "$tmp/cpp/scalar_type_generated.h" "$out/delegate/runner/generated/"
