#!/usr/bin/env bash
# Check cocoon against files of Kata Containers releases that are not part of
# this repository, extracted from a Kata git checkout into a temporary
# directory, with the tests built with -tags katacompat:
#   - the policy engine against Kata's genpolicy rules and test cases (tag
#     4.1.0 unless KATA_REF says otherwise);
#   - our generated policies (policy/generate) against the same test cases,
#     each decided under the policy we generate for the case's pod.yaml;
#   - our protos against the agent protos of every supported Kata release
#     (KATA_PROTO_REFS, the support matrix in README.md), compiled with protoc
#     into one descriptor set per tag.
# Extra arguments go to go test (e.g. -bench . -run '^$').
#
#   ci/kata-compat.sh /path/to/kata-containers[.git] [go test flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=${1:?usage: ci/kata-compat.sh KATA_GIT_DIR [go test flags...]}
shift
ref=${KATA_REF:-4.1.0}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT

show() { git -C "$repo" show "$ref:$1"; }
show src/tools/genpolicy/rules.rego >"$data/rules.rego"
show src/tools/genpolicy/genpolicy-settings.json >"$data/genpolicy-settings.json"
cases=src/tools/genpolicy/tests/policy/testdata
git -C "$repo" ls-tree -r --name-only "$ref" -- "$cases" | grep '/testcases.json$' | while read -r f; do
	dir=${f#"$cases/"}
	dir=${dir%/testcases.json}
	show "$f" >"$data/${dir//\//_}.testcases.json"
	# The pod each case's policy is generated from (and its ConfigMaps),
	# for policy/generate's TestGenpolicyCases.
	for y in pod.yaml config_map.yaml; do
		if git -C "$repo" cat-file -e "$ref:$cases/$dir/$y" 2>/dev/null; then
			show "$cases/$dir/$y" >"$data/${dir//\//_}.$y"
		fi
	done
done

# The agent protocol of each supported release: the five files our protos
# mirror, compiled with the well-known types protoc ships.
proto_refs=${KATA_PROTO_REFS:-4.0.0 4.1.0}
protos=src/libs/protocols/protos
for r in $proto_refs; do
	mkdir -p "$data/protos/$r"
	for f in agent oci types health csi; do
		git -C "$repo" show "$r:$protos/$f.proto" >"$data/protos/$r/$f.proto"
	done
	"${PROTOC:-protoc}" -I "$data/protos/$r" -I "${PROTOC_INCLUDE:-/usr/include}" --include_imports \
		--descriptor_set_out="$data/protos/$r.pb" agent.proto health.proto
done

KATA_TESTDATA=$data KATA_PROTOS=$data/protos KATA_PROTO_REFS=$proto_refs \
	go test -tags "${GOTAGS:-containers_image_openpgp,seccomp},katacompat" -count=1 "$@" ./policy/... ./protocols/
