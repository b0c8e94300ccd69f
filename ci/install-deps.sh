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
# cocoonctl layer build must run the mkfs.erofs a Kata node's containerd runs
# (erofs-utils >= 1.8.2: tar mode, --mkfs-time, --sort=none); Debian 12 has
# 1.5. Take Debian 13's erofs-utils package with its own libc and loader into
# /opt/cocoon/erofs-utils, leaving the system's packages and apt sources alone.
erofs=/opt/cocoon/erofs-utils
if ! "$erofs/mkfs.erofs" --version >/dev/null 2>&1; then
	apt_dir=$(mktemp -d)
	chmod 755 "$apt_dir"  # apt downloads as _apt
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
	echo "deb http://deb.debian.org/debian trixie main" >"$apt_dir/sources.list"
	apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
	apt-get "${apt_opts[@]}" update -qq
	(cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download -qq erofs-utils libc6 libdeflate0 liblz4-1 \
		liblzma5 libselinux1 libpcre2-8-0 libuuid1 libxxhash0 libzstd1 zlib1g)
	rm -rf "$erofs" && mkdir -p "$erofs/root"
	for d in "$apt_dir"/debs/*.deb; do dpkg-deb -x "$d" "$erofs/root"; done
	cat >"$erofs/mkfs.erofs" <<'WRAP'
#!/bin/sh
r=/opt/cocoon/erofs-utils/root/usr
exec "$r/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$r/lib/x86_64-linux-gnu" "$r/bin/mkfs.erofs" "$@"
WRAP
	chmod 755 "$erofs/mkfs.erofs"
	rm -rf "$apt_dir"
	"$erofs/mkfs.erofs" --version
fi
ci/install-protoc-plugins.sh
