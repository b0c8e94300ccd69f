#!/usr/bin/env bash
# Check cocoon's policy engine against Kata's own genpolicy rules and test
# cases. They are not part of this repository: this script extracts them from
# a Kata Containers git checkout (tag 4.1.0 unless KATA_REF says otherwise)
# into a temporary directory and runs the policy tests built with
# -tags katacompat. Extra arguments go to go test (e.g. -bench . -run '^$').
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
done

KATA_TESTDATA=$data go test -tags "${GOTAGS:-containers_image_openpgp,seccomp},katacompat" -count=1 "$@" ./policy/...
