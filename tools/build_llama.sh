#!/usr/bin/env bash
# Build llama-cpp-python once per (version, CMAKE_ARGS) into a project-local wheel cache.
# Why: pip's own cache keys a built wheel by version only, so a crashing -march=native wheel
# would be silently reused. Here the cache directory name is a hash of the flags.
set -euo pipefail
PY=${1:-.venv/bin/python}
VERSION=${LLAMA_CPP_VERSION:-0.3.36}
if [ "$(uname -m)" = "x86_64" ]; then
  DEFAULT_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX_VNNI=ON"
else
  DEFAULT_ARGS="-DGGML_NATIVE=OFF"
fi
ARGS=${EDGETUI_CMAKE_ARGS:-$DEFAULT_ARGS}
KEY=$(printf '%s|%s|%s' "$VERSION" "$ARGS" "$(uname -m)" | sha256sum | cut -c1-16)
DIR=.cache/llama-wheels/$KEY
if ! ls "$DIR"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION (about 4 minutes) with: $ARGS"
  mkdir -p "$DIR"
  CMAKE_ARGS="$ARGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$PY" -m pip wheel --no-deps --no-cache-dir \
    -w "$DIR" "llama-cpp-python==$VERSION"
  printf '%s\n' "$ARGS" > "$DIR/CMAKE_ARGS"
fi
"$PY" -m pip install -q --no-deps "$DIR"/llama_cpp_python-*.whl
