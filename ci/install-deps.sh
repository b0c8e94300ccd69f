#!/usr/bin/env bash
# Install everything the build and the tests need on a fresh Debian 12 machine (root).
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(
	make gcc binutils git ca-certificates  # binutils: readelf checks the agent is static
	libseccomp-dev pkg-config  # seccomp build tag: libseccomp.a for the static agent
	protobuf-compiler libprotobuf-dev  # make protos: protoc and the well-known types (google/protobuf/*.proto)
	busybox-static           # test container rootfs
	runc                     # benchmark baseline
	iproute2 iptables        # network rpcs, tested in network namespaces
	docker-registry skopeo umoci gnupg  # image pull tests: real registry, signing, encryption
	libgpgme-dev             # plain `go build`/`go vet` of image signature code (make uses the openpgp tag)
	cryptsetup-bin erofs-utils e2fsprogs cpio  # guest image builder
	dmsetup fdisk kmod qemu-system-x86  # guest image: stage-1 initrd, partition table, depmod; VM test
	shellcheck               # lint of the install and hardware scripts
)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
ci/install-protoc-plugins.sh
