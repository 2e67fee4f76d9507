#!/usr/bin/env bash
# build-etcd.sh builds etcd from its Go module, for `kintsu bench` to
# compare with: a three-line main calling etcdmain.Main, in a throwaway
# module, so Kintsu's own go.mod never depends on etcd's server.
#
# Usage: scripts/build-etcd.sh [OUTPUT] [VERSION]
#   OUTPUT   where the binary goes (default ./etcd)
#   VERSION  etcd's version (default v3.6.16)
#
# Then: kintsu bench --etcd OUTPUT
set -euo pipefail
out=$(realpath -m "${1:-./etcd}")
version=${2:-v3.6.16}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
cat >main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
go mod init kintsu-bench-etcd >/dev/null 2>&1
timeout 20m go get "go.etcd.io/etcd/server/v3@$version"
timeout 5m go mod tidy
timeout 20m go build -o "$out" .
"$out" --version | head -1
