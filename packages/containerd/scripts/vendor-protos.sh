#!/usr/bin/env bash
# Vendors containerd's API protos into proto/containerd/ from Debian's
# golang-github-containerd-containerd-dev (1.6.20), stripping the gogoproto and
# fieldpath imports/options so that @grpc/proto-loader can load them.
# Usage: vendor-protos.sh [<dir holding github.com/containerd/containerd>]
#   default: /usr/share/gocode/src (where the Debian package installs it)
set -euo pipefail
src="${1:-/usr/share/gocode/src}/github.com/containerd/containerd"
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../../../proto/containerd"
[ -d "$src/api" ] || { echo "no containerd API protos under $src (apt-get install golang-github-containerd-containerd-dev)" >&2; exit 1; }

rm -rf "$out/github.com" "$out/google"
services="containers content diff events images introspection leases namespaces snapshots tasks version"
files=$(cd "$src" && { for s in $services; do ls api/services/$s/v1/*.proto; done; find api/types api/events -name '*.proto'; } | sort)
for f in $files; do
  mkdir -p "$out/github.com/containerd/containerd/$(dirname "$f")"
  sed -E \
    -e '/^import weak /d' \
    -e '/^[[:space:]]*option \((gogoproto|containerd\.plugin)\.[^)]*\)/d' \
    -e 's/[[:space:]]*\[\(gogoproto\.[^]]*\]//' \
    "$src/$f" > "$out/github.com/containerd/containerd/$f"
done

# introspection.proto imports google/rpc/status.proto, which the Debian package does not ship.
mkdir -p "$out/google/rpc"
cat > "$out/google/rpc/status.proto" <<'PROTO'
// From googleapis (google/rpc/status.proto), Apache License 2.0, Copyright 2020 Google LLC.
syntax = "proto3";

package google.rpc;

import "google/protobuf/any.proto";

message Status {
  int32 code = 1;
  string message = 2;
  repeated google.protobuf.Any details = 3;
}
PROTO
if grep -rn 'gogoproto\|containerd\.plugin' "$out/github.com"; then echo "gogoproto left in the vendored protos" >&2; exit 1; fi
echo "vendored $(echo "$files" | wc -l) protos into $out"
