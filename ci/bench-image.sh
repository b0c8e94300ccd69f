#!/usr/bin/env bash
# Image pull benchmark: builds a multi-layer image of ~150 MB compressed
# (Go's source tree, /usr/bin, a small top layer), pushes it plain, JWE
# encrypted and as a second tag sharing all but one layer to a local
# docker-registry, then compares skopeo copy + umoci unpack with the agent's
# puller (Go benchmarks in agent/internal/image, driven through env variables).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/cocoon-bench-image.XXXXXX)
# Unpacked layers live in memory, as in the guest (its /run is tmpfs and a
# confidential VM has no disk to spare); both sides unpack there.
mem=$(mktemp -d /dev/shm/cocoon-bench-image.XXXXXX)
regpid=
cleanup() {
	[ -n "$regpid" ] && kill "$regpid" 2>/dev/null || true
	rm -rf "$work" "$mem"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $reg
YML
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
regpid=$!
for _ in $(seq 100); do curl -fs "http://$reg/v2/" >/dev/null && break; sleep 0.1; done

echo "building the image (this takes a while)"
img=$work/oci:big
umoci init --layout "$work/oci"
umoci new --image "$img"
layer() { # layer SRC DEST: one layer holding a copy of SRC at DEST
	umoci unpack --image "$img" "$work/bundle" >/dev/null
	mkdir -p "$work/bundle/rootfs/$(dirname "$2")"
	cp -a "$1" "$work/bundle/rootfs/$2"
	umoci repack --image "$img" "$work/bundle"
	rm -rf "$work/bundle"
}
layer /usr/local/go/src usr/local/go/src
layer /usr/bin usr/bin
layer /etc/debian_version etc/debian_version
umoci config --image "$img" --config.cmd /bin/sh
umoci gc --layout "$work/oci"
cp -a "$work/oci" "$work/oci2"
img=$work/oci2:big
layer /etc/os-release etc/os-release

openssl genrsa -out "$work/private.pem" 2048 2>/dev/null
openssl rsa -in "$work/private.pem" -pubout -out "$work/public.pem" 2>/dev/null
mkdir -p "$work/keys" && cp "$work/private.pem" "$work/keys/"
push() { skopeo copy --quiet --dest-tls-verify=false "$@"; }
push "oci:$work/oci:big" "docker://$reg/big:plain"
push --encryption-key "jwe:$work/public.pem" "oci:$work/oci:big" "docker://$reg/big:enc"
push "oci:$work/oci2:big" "docker://$reg/big:shared"
size=$(du -sb "$work/registry" | cut -f1)
echo "registry holds $((size / 1000000)) MB (plain + encrypted + shared layer)"

echo "== baseline: skopeo copy + umoci unpack"
/usr/bin/time -f "skopeo copy: %e s, peak RSS %M KB" skopeo copy --quiet --src-tls-verify=false "docker://$reg/big:plain" "oci:$mem/base:big"
/usr/bin/time -f "umoci unpack: %e s, peak RSS %M KB" umoci unpack --image "$mem/base:big" "$mem/base-bundle" >/dev/null
rm -rf "$mem/base" "$mem/base-bundle"

echo "== agent puller"
TMPDIR=$mem COCOON_BENCH_REGISTRY=$reg COCOON_BENCH_IMAGE=big:plain COCOON_BENCH_IMAGE_ENC=big:enc \
	COCOON_BENCH_IMAGE_SHARED=big:shared COCOON_BENCH_KEYS=$work/keys \
	go test -tags "${GOTAGS:-containers_image_openpgp,seccomp}" -run '^$' -bench 'BenchmarkPull' -benchtime "${IMAGE_BENCHTIME:-3x}" ${IMAGE_BENCH_FLAGS:-} ./agent/internal/image
