#!/usr/bin/env bash
# Regenerate the committed Python code for every proto under proto/ into services/.
# CI runs this and fails if the tree changes (generated code must be committed).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
mapfile -t files < <(cd proto && find x0tta6bl4 -name '*.proto' | sort)
[ ${#files[@]} -gt 0 ] || { echo "no .proto files under proto/" >&2; exit 1; }
"$py" -m grpc_tools.protoc -I proto \
  --python_out=services --grpc_python_out=services \
  --mypy_out=services --mypy_grpc_out=services \
  --plugin=protoc-gen-mypy="$(dirname "$py")/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$(dirname "$py")/protoc-gen-mypy_grpc" \
  "${files[@]}"
# every generated directory is a package
for f in "${files[@]}"; do
  d=services/$(dirname "$f")
  while [ "$d" != services ]; do [ -f "$d/__init__.py" ] || : >"$d/__init__.py"; d=$(dirname "$d"); done
done
echo "generated ${#files[@]} proto file(s)"
