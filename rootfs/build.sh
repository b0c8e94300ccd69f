#!/usr/bin/env bash
# Build the cocoon guest: a minimal tree with the agent as /sbin/init, then
#   cocoon-initrd.img       the whole tree as an initramfs (Kata "initrd=")
#   cocoon-rootfs.img       raw disk: p1 = erofs|ext4 root, p2 = dm-verity hash
#   root_hash.txt           Kata's kernel_verity_params value for that disk
#   kernel-params.txt       the dm-mod.create=... root=... fragment it implies
#   configuration-cocoon.toml  [hypervisor.qemu] fragment for a Kata install
#   vmlinuz, cocoon-boot-initrd.img  a stock Debian kernel and the stage-1
#                           initrd it needs to boot cocoon-rootfs.img
# Debian packages are the only inputs; nothing is loop-mounted, so it runs in
# unprivileged CI containers too.
#
# Environment: OUT (build), AGENT (bin/cocoon-agent), ROOTFS_TYPE (erofs|ext4),
# POLICY (name of the default policy, without .rego), KERNEL_PKG (pin a kernel),
# KERNEL_CACHE (where fetched kernels are kept, default $OUT/kernel),
# CONFIDENTIAL (1, the default: the image's /etc/cocoon/agent.toml puts the
# agent in confidential mode, which no kernel parameter can turn off; 0 for
# development images that run without a TEE).
set -euo pipefail
cd "$(dirname "$0")/.."
src=rootfs

OUT=${OUT:-build}
AGENT=${AGENT:-bin/cocoon-agent}
ROOTFS_TYPE=${ROOTFS_TYPE:-erofs}
case "$ROOTFS_TYPE" in erofs | ext4) ;; *) echo "build.sh: ROOTFS_TYPE must be erofs or ext4" >&2; exit 2 ;; esac
CONFIDENTIAL=${CONFIDENTIAL:-1}
case "$CONFIDENTIAL" in 1) confidential=true ;; 0) confidential=false ;; *) echo "build.sh: CONFIDENTIAL must be 1 or 0" >&2; exit 2 ;; esac
[ -x "$AGENT" ] || { echo "build.sh: $AGENT missing (make build)" >&2; exit 2; }
headers=$(readelf -l "$AGENT") || { echo "build.sh: cannot read $AGENT's ELF headers" >&2; exit 2; }
grep -q 'program interpreter' <<<"$headers" && { echo "build.sh: $AGENT must be static" >&2; exit 2; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$OUT/work
rm -rf "$work"
mkdir -p "$work"
log() { echo "rootfs: $*" >&2; }

kdir=$("$src"/kernel.sh "${KERNEL_CACHE:-$OUT/kernel}")
kver=$(basename "$(echo "$kdir"/lib/modules/*)")
log "kernel $kver"

# modules_needed prints the .ko paths (relative to lib/modules/VER) of the
# listed modules and their dependencies, skipping the ones built in.
modules_needed() {
	local mdir=$kdir/lib/modules/$kver
	grep -v -e '^#' -e '^[[:space:]]*$' "$src/modules.list" | awk -v dep="$mdir/modules.dep" -v builtin="$mdir/modules.builtin" '
		function norm(s) { sub(/.*\//, "", s); sub(/\.ko(\.[a-z]+)?$/, "", s); gsub(/-/, "_", s); return s }
		BEGIN {
			while ((getline line < dep) > 0) {
				split(line, kv, ":"); n = norm(kv[1]); path[n] = kv[1]; deps[n] = kv[2]
			}
			while ((getline line < builtin) > 0) bi[norm(line)] = 1
		}
		{
			n = norm($1)
			if (n in bi) next
			if (!(n in path)) { print "module " $1 " is neither built in nor shipped by the kernel" > "/dev/stderr"; bad = 1; next }
			print path[n]; c = split(deps[n], d, " "); for (i = 1; i <= c; i++) print d[i]
		}
		END { exit bad }' | sort -u
}

# copy_modules DEST copies the needed modules and lets depmod index them.
copy_modules() {
	local dest=$1/lib/modules/$kver m
	mkdir -p "$dest"
	for m in $(modules_needed); do
		install -D -m 0644 "$kdir/lib/modules/$kver/$m" "$dest/$m"
	done
	cp "$kdir/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$dest/"
	depmod -b "$1" "$kver"
}

# Names to load at boot, builtins dropped (they would only log failures).
load_list() {
	grep -v -e '^#' -e '^[[:space:]]*$' "$src/modules.list" | while read -r m; do
		grep -q -E "/(${m}|${m//_/-})\.ko$" "$kdir/lib/modules/$kver/modules.builtin" || echo "$m"
	done
}

# install_bins DEST BIN... copies host binaries (from the Debian packages
# ci/install-deps.sh installs) with the shared libraries and loader they need.
install_bins() {
	local dest=$1 b lib
	shift
	for b in "$@"; do
		install -D -m 0755 "$b" "$dest$b"
		for lib in $(ldd "$b" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }'); do
			install -D -m 0755 "$(readlink -f "$lib")" "$dest$lib"
		done
	done
}

busybox_links() { # DEST APPLET...
	local dest=$1 a
	shift
	install -D -m 0755 /bin/busybox "$dest/bin/busybox"
	for a in "$@"; do
		mkdir -p "$dest/$(dirname "$a")"
		ln -sf /bin/busybox "$dest/$a"
	done
}

# ---- the guest tree ---------------------------------------------------------
tree=$OUT/rootfs
rm -rf "$tree"
mkdir -p "$tree"/{bin,sbin,usr/bin,etc/kata-opa,etc/ssl/certs,etc/modules-load.d,proc,sys,dev,run,tmp,var,mnt,root}
chmod 1777 "$tree/tmp"
install -m 0755 "$AGENT" "$tree/usr/bin/kata-agent"
ln -s kata-agent "$tree/usr/bin/cocoon-agent"
ln -s ../usr/bin/kata-agent "$tree/sbin/init"
ln -s sbin/init "$tree/init"
cp -a "$src/files/." "$tree/"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$tree/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$tree/etc/group"
# The kernel asks /sbin/modprobe for modules it needs on demand (file
# systems, socket families); the other applets are for debugging only.
busybox_links "$tree" bin/sh sbin/modprobe sbin/insmod sbin/lsmod bin/ls bin/cat bin/ps bin/dmesg bin/mount sbin/ip
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$tree/etc/ssl/certs/ca-certificates.crt"
# The agent binds the pod's DNS lines over /etc/resolv.conf (Kata's
# network.rs does the same); the verity root is read-only, so the target
# ships here, empty: without a pod the guest resolves nothing.
install -m 0644 /dev/null "$tree/etc/resolv.conf"
# Encrypted emptyDirs and trusted_store (docs/storage.md): LUKS2 with
# dm-integrity through cryptsetup, then a fresh ext4.
install_bins "$tree" /usr/sbin/cryptsetup /usr/sbin/mkfs.ext4
# The agent finds them through PATH, which the stage-1 initrd sets to
# /bin:/sbin (as /sbin is /usr/sbin on a merged-/usr Debian).
ln -s ../usr/sbin/cryptsetup ../usr/sbin/mkfs.ext4 "$tree/sbin/"
install -m 0644 /etc/mke2fs.conf "$tree/etc/mke2fs.conf"

# Policies: whatever the policy package ships (not its test data), flattened
# into /etc/kata-opa.
while IFS= read -r f; do
	b=$(basename "$f")
	[ ! -e "$tree/etc/kata-opa/$b" ] || { echo "build.sh: two policies named $b" >&2; exit 1; }
	install -m 0644 "$f" "$tree/etc/kata-opa/$b"
done < <(find policy -name testdata -prune -o -name '*.rego' ! -name '*_test.rego' -print 2>/dev/null | sort)
# The image's default policy: a confidential image refuses what CoCo's
# default refuses until initdata brings the pod's own policy; a development
# image allows everything, as Kata's images do, so pods that install their
# policy with SetPolicy (the io.katacontainers.config.agent.policy
# annotation) work.
default=${POLICY:-}
if [ -z "$default" ]; then
	case "$CONFIDENTIAL" in 1) default=coco-default ;; *) default=allow-all ;; esac
fi
if [ -n "$default" ]; then
	[ -e "$tree/etc/kata-opa/$default.rego" ] || { echo "build.sh: no policy $default.rego under policy/" >&2; exit 1; }
	ln -s "$default.rego" "$tree/etc/kata-opa/default-policy.rego"
	log "default policy $default"
else
	log "WARNING: policy/ ships no coco-default.rego or allow-all.rego; image has no default policy"
fi

# The agent's own configuration, at the path built into it. On the verity
# root it is measured with the image, so it, not the host's kernel command
# line, decides confidential mode (docs/security.md).
mkdir -p "$tree/etc/cocoon"
printf '# Written by rootfs/build.sh (CONFIDENTIAL=%s); see docs/security.md.\nconfidential = %s\n' \
	"$CONFIDENTIAL" "$confidential" >"$tree/etc/cocoon/agent.toml"
chmod 0644 "$tree/etc/cocoon/agent.toml"
log "confidential $confidential"

# The sandbox's pause container, used when the runtime asks for image "pause".
install -D -m 0644 "$src/pause/config.json" "$tree/pause_bundle/config.json"
mkdir -p "$tree/pause_bundle/rootfs"
gcc -static -Os -s -o "$tree/pause_bundle/rootfs/pause" "$src/pause/pause.c"

copy_modules "$tree"
load_list >"$tree/etc/modules-load.d/cocoon.conf"

# ---- initrd: the whole tree, agent as /init ----------------------------------
cpio_gz() { # DIR OUT
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -9 >"$2"
}
find "$tree" -exec touch -h -d @0 {} +
cpio_gz "$tree" "$OUT/cocoon-initrd.img"

# ---- disk image: root + dm-verity hash, no loop devices ----------------------
uuid=$(cd "$tree" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-32 |
	sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/')
data=$work/root.$ROOTFS_TYPE
if [ "$ROOTFS_TYPE" = erofs ]; then
	mkfs.erofs --quiet -zlz4hc -T0 --all-root -U"$uuid" "$data" "$tree"
else
	kib=$(du -sk "$tree" | cut -f1)
	# Keep the journal: Kata mounts ext4 roots with data=ordered, which needs one.
	E2FSPROGS_FAKE_TIME=1 mkfs.ext4 -q -F -b 4096 -d "$tree" -U "$uuid" -E root_owner=0:0,hash_seed="$uuid" \
		-L cocoon-root "$data" $(((kib * 5 / 4 + 8192) / 4))
fi
hash=$work/root.hash
salt=$(sha256sum "$data" | cut -c1-64)
veritysetup format --no-superblock --salt="$salt" "$data" "$hash" >"$work/verity.txt"
field() { awk -F':[[:space:]]*' -v k="$1" '$1 == k { print $2 }' "$work/verity.txt"; }
root_hash=$(field "Root hash") data_blocks=$(field "Data blocks")
dbs=$(field "Data block size") hbs=$(field "Hash block size")
[ -n "$root_hash" ] && [ -n "$data_blocks" ] || { echo "build.sh: cannot parse veritysetup output" >&2; exit 1; }

mib=$((1 << 20))
ceil_mib() { echo $((($1 + mib - 1) / mib)); }
p1_mib=$(ceil_mib "$(stat -c %s "$data")")
p2_mib=$(ceil_mib "$(stat -c %s "$hash")")
disk=$OUT/cocoon-rootfs.img
rm -f "$disk"
truncate -s $(((1 + p1_mib + p2_mib) * mib)) "$disk"
printf 'label: dos\nlabel-id: 0x%s\nstart=1MiB, size=%dMiB, type=83\nstart=%dMiB, size=%dMiB, type=83\n' \
	"${uuid:0:8}" "$p1_mib" $((1 + p1_mib)) "$p2_mib" | sfdisk --quiet --no-reread --no-tell-kernel "$disk"
dd if="$data" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$hash" of="$disk" bs=1M seek=$((1 + p1_mib)) conv=notrunc status=none

verity="root_hash=$root_hash,salt=$salt,data_blocks=$data_blocks,data_block_size=$dbs,hash_block_size=$hbs"
echo "$verity" >"$OUT/root_hash.txt"
rootflags=ro
[ "$ROOTFS_TYPE" = ext4 ] && rootflags=data=ordered,errors=remount-ro
printf 'dm-mod.create="dm-verity,,,ro,0 %d verity 1 /dev/vda1 /dev/vda2 %d %d %d 0 sha256 %s %s" root=/dev/dm-0 rootflags=%s rootfstype=%s\n' \
	$((dbs / 512 * data_blocks)) "$dbs" "$hbs" "$data_blocks" "$root_hash" "$salt" "$rootflags" "$ROOTFS_TYPE" >"$OUT/kernel-params.txt"

# ---- stock kernel + stage-1 initrd (what the VM test boots) -------------------
install -m 0644 "$kdir/boot/vmlinuz-$kver" "$OUT/vmlinuz"
# Also the uncompressed ELF: QEMU boots it through its PVH entry point, which
# skips the in-guest xz decompression that takes ~20 s under TCG.
xzoff=$(LC_ALL=C grep -m1 -obUaP '\xfd7zXZ\x00' "$OUT/vmlinuz" | cut -d: -f1)
if [ -n "$xzoff" ] && grep -q '^CONFIG_PVH=y' "$kdir/boot/config-$kver"; then
	# xz stops at the end of its stream and complains about the trailer.
	{ tail -c +$((xzoff + 1)) "$OUT/vmlinuz" | xz -dc 2>/dev/null || true; } >"$OUT/vmlinux"
	[ "$(head -c 4 "$OUT/vmlinux" | tail -c 3)" = ELF ] || { log "could not unpack vmlinux"; rm -f "$OUT/vmlinux"; }
fi
s1=$work/stage1
mkdir -p "$s1"/{etc/initrd.d,proc,sys,dev,newroot,lib64,lib/x86_64-linux-gnu}
install -m 0755 "$src/boot/init" "$s1/init"
busybox_links "$s1" $(busybox --list-full | grep -v -e '^bin/busybox$' -e '^linuxrc$')
install -D -m 0755 /usr/sbin/dmsetup "$s1/sbin/dmsetup"
for lib in $(ldd /usr/sbin/dmsetup | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }'); do
	install -D -m 0755 "$(readlink -f "$lib")" "$s1$lib"
done
copy_modules "$s1"
load_list >"$s1/etc/modules"
find "$s1" -exec touch -h -d @0 {} +
cpio_gz "$s1" "$OUT/cocoon-boot-initrd.img"

sed -e "s|@ROOTFS_TYPE@|$ROOTFS_TYPE|" -e "s|@VERITY@|$verity|" -e "s|@CONFIDENTIAL@|$CONFIDENTIAL|" "$src/configuration-cocoon.toml.in" >"$OUT/configuration-cocoon.toml"
{
	echo "kernel_package=$(basename "$kdir")"
	echo "kernel_version=$kver"
	echo "rootfs_type=$ROOTFS_TYPE"
	echo "confidential=$confidential"
	echo "root_hash=$root_hash"
	for f in cocoon-rootfs.img cocoon-initrd.img cocoon-boot-initrd.img vmlinuz vmlinux; do
		[ ! -e "$OUT/$f" ] || echo "size.$f=$(stat -c %s "$OUT/$f")"
	done
	echo "size.agent=$(stat -c %s "$AGENT")"
} >"$OUT/manifest.txt"
rm -rf "$work"
log "done: $(tr '\n' ' ' <"$OUT/manifest.txt")"
