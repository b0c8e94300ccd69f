#!/usr/bin/env bash
# make fuzz: run every fuzz target of the project for a while (default 10s each).
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-10s}
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
	pkg=./$(dirname "${f#./}")
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r fn; do
		echo "== $pkg $fn ($t)"
		go test -tags "${GOTAGS:-containers_image_openpgp,seccomp}" -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" "$pkg"
	done
done
