#!/usr/bin/env bash
# Validate cocoon on a TEE node: run Kata's own Confidential Containers
# integration tests (tests/integration/kubernetes in a Kata checkout) against
# pods that boot the cocoon image, with a real Trustee deployed by those
# tests' own scripts. Run as root on the single node of a Kubernetes cluster
# that has kata-deploy installed, from this repository, after make rootfs:
#
#   ci/hardware/run-coco-tests.sh --kata ~/kata-containers --tee snp
#
# Options:
#   --kata DIR      Kata Containers checkout at the tag of the installed Kata
#   --tee snp|tdx   the node's TEE
#   --runtime rs|go runtime-rs (default, kata-deploy's default) or the Go runtime
#   --build DIR     make rootfs output (default build)
#   --tests "A B"   bats files (default: attestation, sealed secrets, guest pull)
#   --no-install    use the cocoon image already installed
#   --no-kbs        use the Trustee already deployed by an earlier run
#   --print-env     print the test environment and exit (nothing is touched)
# docs/hardware.md explains each step and how to read a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

kata="" tee="" runtime=rs build=build install=1 kbs=1 print=0
tests="k8s-confidential-attestation.bats k8s-sealed-secret.bats k8s-guest-pull-image.bats k8s-guest-pull-image-encrypted.bats k8s-guest-pull-image-signature.bats k8s-guest-pull-image-authenticated.bats"
while [ $# -gt 0 ]; do
	case "$1" in
	--kata) kata=${2:?}; shift ;;
	--tee) tee=${2:?}; shift ;;
	--runtime) runtime=${2:?}; shift ;;
	--build) build=${2:?}; shift ;;
	--tests) tests=${2:?}; shift ;;
	--no-install) install=0 ;;
	--no-kbs) kbs=0 ;;
	--print-env) print=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-coco-tests: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
die() { echo "run-coco-tests: $*" >&2; exit 1; }
case "$tee" in snp | tdx) ;; *) die "--tee must be snp or tdx" ;; esac
case "$runtime" in rs) shim=qemu-$tee-runtime-rs ;; go) shim=qemu-$tee ;; *) die "--runtime must be rs or go" ;; esac

# The variables Kata's tests read (gha-run.sh, confidential_common.sh, the
# bats files' setup): the shim behind the kata-<shim> RuntimeClass, a KBS
# they may provision, and guest pull through the nydus snapshotter that
# kata-deploy sets up for the TEE shims.
test_env=(
	"KATA_HYPERVISOR=$shim"
	"KBS=true"
	"KBS_INGRESS=${KBS_INGRESS:-}"
	"SNAPSHOTTER=nydus"
	"PULL_TYPE=guest-pull"
	"K8S_TEST_HOST_TYPE=baremetal"
)
if [ "$print" = 1 ]; then
	printf '%s\n' "${test_env[@]}"
	exit 0
fi

[ -d "${kata:-/nonexistent}/tests/integration/kubernetes" ] || die "--kata must name a Kata Containers checkout"
[ "$(id -u)" = 0 ] || die "run as root on the node (the install writes Kata's configuration)"
for tool in kubectl bats git; do
	command -v "$tool" >/dev/null || die "$tool is missing"
done

# The TEE must be enabled in the host kernel, or Kata falls back to nothing
# and every test fails late with an unhelpful message.
case "$tee" in
snp) param=/sys/module/kvm_amd/parameters/sev_snp ;;
tdx) param=/sys/module/kvm_intel/parameters/tdx ;;
esac
grep -q '^[Y1]' "$param" 2>/dev/null || die "$tee is not enabled in this host's KVM ($param)"
kubectl get runtimeclass "kata-$shim" >/dev/null || die "RuntimeClass kata-$shim missing: install kata-deploy with $shim enabled"
echo "run-coco-tests: Kata checkout at $(git -C "$kata" describe --tags --always)" >&2

if [ "$install" = 1 ]; then
	rootfs/install.sh --build "$build" --shims "$shim"
else
	rootfs/install.sh --reapply --shims "$shim"
fi

cd "$kata/tests/integration/kubernetes"
export "${test_env[@]}"
if [ "$kbs" = 1 ]; then
	./gha-run.sh install-kbs-client
	./gha-run.sh deploy-coco-kbs
fi
read -r -a files <<<"$tests"
status=0
bats --timing --report-formatter junit --output "${OUTPUT_DIR:-/tmp}" "${files[@]}" || status=$?
echo "run-coco-tests: bats exited $status; JUnit report in ${OUTPUT_DIR:-/tmp}/report.xml" >&2
exit "$status"
