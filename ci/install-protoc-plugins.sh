#!/usr/bin/env bash
# Installs the pinned protoc plugins used by protocols/gen.sh into bin/tools.
# Safe to run repeatedly: a plugin already built at the pinned version is kept.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ROOT}/bin/tools"
mkdir -p "${TOOLS}"

PROTOC_GEN_GO_VERSION="v1.36.12"
PROTOC_GEN_GO_TTRPC_VERSION="v1.2.10"

install_tool() {
	local bin="$1" pkg="$2" mod="$3" version="$4"
	if [[ -x "${TOOLS}/${bin}" ]] &&
		go version -m "${TOOLS}/${bin}" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+${mod}[[:space:]]+${version}([[:space:]]|$)"; then
		return 0
	fi
	echo "installing ${pkg}@${version} into ${TOOLS}" >&2
	(cd "${ROOT}" && GOBIN="${TOOLS}" GOFLAGS=-mod=mod go install "${pkg}@${version}")
}

install_tool protoc-gen-go \
	google.golang.org/protobuf/cmd/protoc-gen-go \
	google.golang.org/protobuf "${PROTOC_GEN_GO_VERSION}"
install_tool protoc-gen-go-ttrpc \
	github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc \
	github.com/containerd/ttrpc "${PROTOC_GEN_GO_TTRPC_VERSION}"
