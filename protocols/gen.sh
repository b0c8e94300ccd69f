#!/usr/bin/env bash
# Regenerates the Go bindings in protocols/agentpb and protocols/typespb from
# protocols/protos using the pinned plugins installed by
# ci/install-protoc-plugins.sh into bin/tools.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ROOT}/bin/tools"
PROTOS="${ROOT}/protocols/protos"
MODULE="github.com/cocoon-tee/cocoon"
PROTOC="${PROTOC:-protoc}"
# Directory holding google/protobuf/empty.proto (Debian: protobuf-compiler
# with libprotobuf-dev / the bundled well-known types).
PROTOC_INCLUDE="${PROTOC_INCLUDE:-/usr/include}"

for plugin in protoc-gen-go protoc-gen-go-ttrpc; do
	if [[ ! -x "${TOOLS}/${plugin}" ]]; then
		echo "missing ${TOOLS}/${plugin}; run ci/install-protoc-plugins.sh" >&2
		exit 1
	fi
done
if [[ ! -f "${PROTOC_INCLUDE}/google/protobuf/empty.proto" ]]; then
	echo "google/protobuf/empty.proto not found under ${PROTOC_INCLUDE}" >&2
	exit 1
fi

rm -f "${ROOT}"/protocols/agentpb/*.pb.go "${ROOT}"/protocols/typespb/*.pb.go

cd "${PROTOS}"
# Sorted, relative names keep the generated "source:" headers stable.
mapfile -t files < <(LC_ALL=C ls -1 -- *.proto)

"${PROTOC}" \
	-I "${PROTOS}" \
	-I "${PROTOC_INCLUDE}" \
	--plugin=protoc-gen-go="${TOOLS}/protoc-gen-go" \
	--plugin=protoc-gen-go-ttrpc="${TOOLS}/protoc-gen-go-ttrpc" \
	--go_out="${ROOT}" --go_opt=module="${MODULE}" \
	--go-ttrpc_out="${ROOT}" --go-ttrpc_opt=module="${MODULE}" \
	"${files[@]}"
