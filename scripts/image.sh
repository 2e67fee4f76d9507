#!/bin/sh
# Builds Kintsu's container image (default tag kintsu:dev):
#   scripts/image.sh [TAG]
# The build stage is this machine's Go toolchain: a static binary with the
# version, commit and build time linked in, then `docker build` of the
# Dockerfile (FROM scratch) over a context holding only that binary, the
# CA roots and the non-root user's entries. Nothing is pulled.
set -eu
cd "$(dirname "$0")/.."
tag=${1:-kintsu:dev}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT INT TERM
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then commit="$commit+dirty"; fi
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.commit=$commit -X main.buildDate=$built" -o "$ctx/kintsu" ./cmd/kintsu
cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
echo 'kintsu:x:65532:65532:kintsu:/data:/nonexistent' > "$ctx/passwd"
echo 'kintsu:x:65532:' > "$ctx/group"
mkdir "$ctx/data"
cp Dockerfile "$ctx/"
docker build --quiet -t "$tag" "$ctx"
echo "built $tag ($commit)"
