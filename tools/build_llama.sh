#!/usr/bin/env bash
# Build llama-cpp-python once per (version, CMAKE_ARGS) into a project-local wheel cache.
# Why: pip's own cache keys a built wheel by version only, so a crashing wheel would be silently reused.
# Here the cache directory name is a hash of the flags.
#
# Flags: never -march=native (on CPUs with AMX it segfaults in batched decode, llama.cpp issue 20824),
# but each x86-64 extension switched on only when this CPU reports it in /proc/cpuinfo: an AVX-512 build
# dies with SIGILL on a CPU without AVX-512 (seen on AMD EPYC machines of the same kind). On the
# Intel build machines this gives the portable set: AVX AVX2 FMA F16C BMI2 AVX512 AVX512_VNNI AVX_VNNI.
# EDGETUI_CMAKE_ARGS overrides the whole set (e.g. to build for another device).
set -euo pipefail
PY=${1:-.venv/bin/python}
VERSION=${LLAMA_CPP_VERSION:-0.3.36}

x86_args() {
  local flags have
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  have() { for f in "$@"; do [[ $flags == *" $f "* ]] || return 1; done; }
  local args="-DGGML_NATIVE=OFF"
  on() { if have "${@:2}"; then args+=" -D$1=ON"; else args+=" -D$1=OFF"; fi; }
  on GGML_AVX avx
  on GGML_AVX2 avx2
  on GGML_FMA fma
  on GGML_F16C f16c
  on GGML_BMI2 bmi2
  on GGML_AVX512 avx512f avx512cd avx512vl avx512dq avx512bw
  on GGML_AVX512_VNNI avx512f avx512_vnni
  on GGML_AVX_VNNI avx_vnni
  echo "$args"
}

if [ "$(uname -m)" = "x86_64" ]; then
  DEFAULT_ARGS=$(x86_args)
else
  DEFAULT_ARGS="-DGGML_NATIVE=OFF"
fi
ARGS=${EDGETUI_CMAKE_ARGS:-$DEFAULT_ARGS}
KEY=$(printf '%s|%s|%s' "$VERSION" "$ARGS" "$(uname -m)" | sha256sum | cut -c1-16)
DIR=.cache/llama-wheels/$KEY
STAMP="$(dirname "$PY")/../.llama-key"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$KEY" ]; then exit 0; fi  # this build is installed already
if ! ls "$DIR"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION (about 4-9 minutes on 2 cores) with: $ARGS"
  mkdir -p "$DIR"
  CMAKE_ARGS="$ARGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$PY" -m pip wheel --no-deps --no-cache-dir \
    -w "$DIR" "llama-cpp-python==$VERSION"
  printf '%s\n' "$ARGS" > "$DIR/CMAKE_ARGS"
fi
"$PY" -m pip install -q --no-deps --force-reinstall "$DIR"/llama_cpp_python-*.whl
printf '%s\n' "$KEY" > "$STAMP"
