#!/usr/bin/env bash
# Builds the LUTHAM delegate (delegate/): liblutham_backend.so, lutham_runner and
# lutham_kernel_test, against the ExecuTorch runtime shipped in the executorch wheel, and
# installs the lutham_backend CMake package (lutham::backend) into <build dir>/install.
# Idempotent: a second run only rebuilds what changed. Progress goes to stderr.
#
#   scripts/build-delegate.sh            host build into build/delegate (the venv's wheel)
#   scripts/build-delegate.sh aarch64    cross build into build/delegate-aarch64 with Debian's
#                                        g++-aarch64-linux-gnu against the aarch64 executorch
#                                        wheel (downloaded once into .whl/ with pip download)
# Environment:
#   LUTHAM_PYTHON=/path/to/python   interpreter whose site-packages hold executorch (default .venv)
#   LUTHAM_BUILD_DIR=dir            build directory
#   LUTHAM_JOBS=N                   parallel jobs (default 2)
#   LUTHAM_ET_AARCH64_WHEEL=file    aarch64 executorch wheel to use instead of downloading one
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-host}
py=${LUTHAM_PYTHON:-$root/.venv/bin/python}
jobs=${LUTHAM_JOBS:-2}
log() { echo "[lutham build-delegate] $*" >&2; }

[ -x "$py" ] || { log "no Python at $py (run npm run setup first, or set LUTHAM_PYTHON)"; exit 1; }
cmake_bin=$(dirname "$py")/cmake
if [ ! -x "$cmake_bin" ]; then cmake_bin=$(command -v cmake || true); fi
[ -n "$cmake_bin" ] || { log "no cmake (the venv's cmake package provides one)"; exit 1; }
[ -f /usr/include/flatbuffers/flatbuffers.h ] || { log "flatbuffers headers missing: apt-get install libflatbuffers-dev"; exit 1; }

case "$target" in
  host)
    build=${LUTHAM_BUILD_DIR:-$root/build/delegate}
    et_dir=$("$py" -c 'import executorch, os; print(os.path.join(list(executorch.__path__)[0], "lib", "cmake", "executorch"))')
    extra=()
    ;;
  aarch64)
    build=${LUTHAM_BUILD_DIR:-$root/build/delegate-aarch64}
    command -v aarch64-linux-gnu-g++ >/dev/null || { log "no aarch64-linux-gnu-g++: apt-get install g++-aarch64-linux-gnu"; exit 1; }
    version=$("$py" -c 'from importlib.metadata import version; print(version("executorch"))')
    wheel=${LUTHAM_ET_AARCH64_WHEEL:-}
    if [ -z "$wheel" ]; then
      wheel=$(ls "$root"/.whl/executorch-"$version"-*manylinux*aarch64.whl 2>/dev/null | head -1 || true)
    fi
    if [ -z "$wheel" ]; then
      log "downloading the aarch64 executorch $version wheel into .whl/"
      "$py" -m pip download --quiet --platform manylinux_2_28_aarch64 --only-binary=:all: --no-deps \
        "executorch==$version" -d "$root/.whl" >&2
      wheel=$(ls "$root"/.whl/executorch-"$version"-*manylinux*aarch64.whl | head -1)
    fi
    et_root=$root/build/et-aarch64
    stamp=$et_root/.wheel
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wheel" ]; then
      log "unpacking the runtime of $(basename "$wheel") into $et_root"
      rm -rf "$et_root"; mkdir -p "$et_root"
      "$py" - "$wheel" "$et_root" <<'EOF'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        if n.startswith(("executorch/lib/", "executorch/include/", "executorch/share/")):
            z.extract(n, dest)
EOF
      echo "$wheel" > "$stamp"
    fi
    et_dir=$et_root/executorch/lib/cmake/executorch
    extra=(-DCMAKE_TOOLCHAIN_FILE="$root/delegate/cmake/aarch64-linux-gnu.cmake")
    ;;
  *) log "unknown target '$target' (host or aarch64)"; exit 2 ;;
esac
[ -f "$et_dir/executorch-config.cmake" ] || { log "executorch CMake package missing at $et_dir"; exit 1; }

log "configuring $build for $target ($("$cmake_bin" --version | head -1), executorch_DIR=$et_dir)"
"$cmake_bin" -S "$root/delegate" -B "$build" -DCMAKE_BUILD_TYPE=Release -Dexecutorch_DIR="$et_dir" -DLUTHAM_PYTHON="$py" \
  "${extra[@]}" ${LUTHAM_CMAKE_ARGS:-} >&2
log "building with $jobs jobs"
"$cmake_bin" --build "$build" -j "$jobs" >&2
log "built $build/liblutham_backend.so, $build/lutham_runner and $build/lutham_kernel_test"
# The CMake package for applications: find_package(lutham_backend) with
# -Dlutham_backend_DIR=$build/install/lib/cmake/lutham_backend (examples/cpp_app).
"$cmake_bin" --install "$build" --prefix "$build/install" >/dev/null
log "installed the lutham_backend CMake package into $build/install"
