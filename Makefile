# cocoon — see README.md. Every target works on a fresh Debian 12 machine as
# root after ci/install-deps.sh.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/cocoon-tee/cocoon/agent/internal/version.Version=$(VERSION) -extldflags=-static
# containers_image_openpgp: verify image signatures with the pure-Go OpenPGP
# code instead of cgo gpgme, which cannot be linked statically.
# seccomp: libcontainer's seccomp filters (cgo + static libseccomp.a).
# Build, vet and test all use these tags.
TEST_TAGS := containers_image_openpgp,seccomp
TAGS      := osusergo,netgo,$(TEST_TAGS)
# The agent alone also drops net/http's bundled HTTP/2 (nethttpomithttp2,
# 0.5 MB of 33): registries and KBSes speak HTTP/1.1 and containers/image
# fetches layers on parallel connections anyway; the VM tests run this build.
AGENT_TAGS := $(TAGS),nethttpomithttp2
BINARIES  := bin/cocoon-agent bin/cocoonctl
GOFILES   := $(shell find . -name '*.go' -not -path './bin/*' -not -path './build/*')

.PHONY: all build test test-short run protos bench lint fuzz clean rootfs e2e ci

all: build

build: $(BINARIES)

bin/cocoon-agent: $(GOFILES) go.mod go.sum
	CGO_ENABLED=1 $(GO) build -trimpath -tags $(AGENT_TAGS) -ldflags '$(LDFLAGS)' -o $@ ./agent/cmd/cocoon-agent

bin/cocoonctl: $(GOFILES) go.mod go.sum
	CGO_ENABLED=1 $(GO) build -trimpath -tags $(TAGS) -ldflags '$(LDFLAGS)' -o $@ ./tools/cocoonctl

# The whole suite, as root: real containers, mounts and a local registry.
test: build lint
	$(GO) test -tags $(TEST_TAGS) -count=1 -timeout 40m ./...

# The quick tier: the same suite without the VM boots of ci/e2e (-short);
# 1 m 19 s warm, 2 m 46 s with a cold build cache on two idle cores. make test stays the full suite.
test-short: lint
	$(GO) test -tags $(TEST_TAGS) -count=1 -short -timeout 10m ./...

# Start the agent on a unix socket and drive it with cocoonctl; Ctrl-C stops it.
run: build
	ci/run-local.sh

# CI: everything below in a fresh Debian 12 root (see .ci/run).
ci:
	.ci/run

protos:
	ci/install-protoc-plugins.sh
	protocols/gen.sh

bench: build
	GOTAGS=$(TEST_TAGS) ci/bench.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet -tags $(TEST_TAGS) ./...

# Short fuzzing pass over every parser (FUZZTIME per target).
FUZZTIME ?= 10s
fuzz:
	GOTAGS=$(TEST_TAGS) ci/fuzz.sh $(FUZZTIME)

# Guest image: rootfs tree, initrd, dm-verity disk, Kata config fragment under build/.
rootfs: bin/cocoon-agent
	rootfs/build.sh

# Boot the guest image under QEMU (TCG) and drive the agent inside it.
e2e: bin/cocoon-agent
	$(GO) test -count=1 -timeout 15m -v ./ci/e2e/...

clean:
	rm -rf bin build
