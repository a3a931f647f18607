# Dockyard's build and test entry points. Run as root on Debian 12.
#
#   make test    install system packages + venv, build test images, run all tests
#   make unit    unit tests only (no root needed once deps are installed)
#   make run     start dockyardd in the foreground with the default config
#                (crictl --config deploy/crictl.yaml talks to it)
#   make run-runtime  run a busybox container with dockyard-runc and show its output
#   make bench   time dockyard-runc against runc and crun (bench/runtime.py)
#   make clean   remove build/ and the stamps (the venv stays; `make distclean`)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

PYTHON  ?= /usr/bin/python3
VENV    := .venv
STAMPS  := .stamp
RUNTIME ?= $(CURDIR)/$(VENV)/bin/dockyard-runc
BENCH_ARGS ?=
DOCKYARDD_ARGS ?=

.PHONY: deps images tools typecheck test unit integration run run-runtime bench clean distclean

deps: $(STAMPS)/venv

$(STAMPS)/apt: hack/apt-packages.txt hack/install-deps.sh
	hack/install-deps.sh
	@mkdir -p $(STAMPS) && touch $@

# Re-installs when pyproject.toml changes; otherwise a no-op.
$(STAMPS)/venv: pyproject.toml | $(STAMPS)/apt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	hack/install-launcher.sh $(CURDIR)/$(VENV)
	@mkdir -p $(STAMPS) && touch $@

# hack/build-images.sh keeps its own cache key (package versions + its hash).
images: $(STAMPS)/apt
	hack/build-images.sh

# Go tools built from the Go module proxy into build/bin (cached).
tools: $(STAMPS)/apt
	hack/install-crictl.sh

typecheck: deps
	hack/typecheck.sh

# pytest exits 5 when it collected nothing; that is a failure here too
# (make fails on any non-zero status, so nothing may swallow it).
# tests/e2e runs critest's conformance suite (default handler), the
# standalone kubelet and the node e2e subset (hack/node-e2e-subset.txt);
# critest's benchmark test skips unless asked for.
test: deps images tools typecheck critest-tools kubelet node-e2e-tools guest
	$(VENV)/bin/pytest -q tests/unit tests/integration tests/e2e

unit: deps
	$(VENV)/bin/pytest -q tests/unit

integration: deps images tools
	$(VENV)/bin/pytest -q tests/integration

run: deps
	$(VENV)/bin/dockyardd $(DOCKYARDD_ARGS)

# The CRI fuzzer with fresh randomness and more examples than make test's
# repeatable run (FUZZ_EXAMPLES per RPC and request shape).
FUZZ_EXAMPLES ?= 400
.PHONY: fuzz
fuzz: deps images tools
	DOCKYARD_FUZZ_RANDOM=1 DOCKYARD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest -q tests/integration/test_cri_fuzz.py

run-runtime: deps images
	hack/run-busybox.sh $(RUNTIME)

bench: deps images
	$(VENV)/bin/python bench/runtime.py $(BENCH_ARGS)

# dockyardd against containerd 1.6: pod lifecycle medians and shim memory
# (bench/pod.py; BENCH_ARGS="--iterations 20 --pods 20" are its defaults).
.PHONY: bench-pod
bench-pod: deps images
	$(VENV)/bin/python bench/pod.py $(BENCH_ARGS)

# dockyardd against containerd 1.6: ExecSync and streaming exec latency, exec
# stream throughput (bench/stream.py; BENCH_ARGS="--runs 100 --stream-runs 10 --mib 100").
.PHONY: bench-stream
bench-stream: deps images tools
	$(VENV)/bin/python bench/stream.py $(BENCH_ARGS)

# 110 pods on one node against containerd 1.6: ramp, 5 minutes of kubelet's
# polling, churn at 5 pods/s, teardown (bench/density.py; about 20 minutes;
# BENCH_ARGS="--quick" for 40 pods and short phases).
.PHONY: bench-density
bench-density: deps images
	$(VENV)/bin/python bench/density.py $(BENCH_ARGS)

# Daemon CPU per CRI call, one at a time from a Go gRPC client as kubelet's,
# against containerd 1.6 (bench/percall.py; BENCH_ARGS="--calls 3000 --rounds 3").
.PHONY: bench-percall
bench-percall: deps images
	hack/install-percall-client.sh
	$(VENV)/bin/python bench/percall.py $(BENCH_ARGS)

# Cold pulls of a 816 MiB image built from Debian packages (gzip and zstd)
# against containerd 1.6, with decompress/untar floors and pulls interrupted
# by SIGKILL (bench/pull.py; BENCH_ARGS="--rounds 3" is its default).
.PHONY: bench-pull
bench-pull: deps images
	$(VENV)/bin/python bench/pull.py $(BENCH_ARGS)

clean:
	rm -rf build $(STAMPS) .pytest_cache .mypy_cache

distclean: clean
	rm -rf $(VENV)

# --- Conformance (issue 6): critest and a standalone kubelet ----------------
#   make critest             critest v1.34.0 against dockyardd, default handler
#   make critest-runc        ... with the runc handler;  make critest-crun: crun
#   make critest-bench       critest -benchmark against dockyardd
#   make critest-containerd  critest against Debian's containerd 1.6 (reference)
#   make critest-bench-containerd  -> build/critest-bench-containerd.txt
#   make kubelet-e2e         the standalone-kubelet scenarios against dockyardd
#                            (DOCKYARD_E2E_RUNTIME=containerd: against containerd)
# Skipped specs and their reasons: hack/critest-skips.txt.
.PHONY: critest-tools critest critest-runc critest-crun critest-bench critest-containerd critest-bench-containerd kubelet kubelet-e2e

critest-tools: tools
	hack/install-critest.sh
	hack/build-critest-images.sh

critest: deps critest-tools
	CRITEST_HANDLER= $(VENV)/bin/pytest -q tests/e2e/test_critest.py -k conformance

critest-runc: deps critest-tools
	CRITEST_HANDLER=runc $(VENV)/bin/pytest -q tests/e2e/test_critest.py -k conformance

critest-crun: deps critest-tools
	CRITEST_HANDLER=crun $(VENV)/bin/pytest -q tests/e2e/test_critest.py -k conformance

critest-bench: deps critest-tools
	CRITEST_BENCHMARK=1 $(VENV)/bin/pytest -q tests/e2e/test_critest.py -k benchmark

# containerd is stopped and its state removed whatever critest's result.
critest-containerd: critest-tools
	hack/containerd-cri.sh start
	rc=0; CRITEST_NAME=containerd hack/run-critest.sh "$$(hack/containerd-cri.sh endpoint)" || rc=$$?; \
	  hack/containerd-cri.sh stop; exit $$rc

critest-bench-containerd: critest-tools
	hack/containerd-cri.sh start
	rc=0; CRITEST_NAME=containerd hack/run-critest.sh "$$(hack/containerd-cri.sh endpoint)" \
	  --benchmark build/critest-bench-containerd.txt || rc=$$?; \
	  hack/containerd-cri.sh stop; exit $$rc

kubelet: $(STAMPS)/apt
	hack/install-kubelet.sh

kubelet-e2e: deps critest-tools kubelet
	$(VENV)/bin/pytest -q tests/e2e/test_kubelet.py

# --- Node conformance (issue 17): Kubernetes' node e2e suite ------------------
#   make node-e2e             e2e_node.test v1.37, focus [NodeConformance], minus
#                             [Flaky|Slow|Serial|Disruptive] and hack/node-e2e-skips.txt,
#                             against dockyardd (isolated: no lock needed)
#   make node-e2e-containerd  the same suite and skips against Debian's containerd 1.6
#   make node-e2e-subset      the specs of hack/node-e2e-subset.txt against dockyardd
#                             (tests/e2e/test_node_e2e.py, which make test runs too;
#                             DOCKYARD_NODE_E2E=0 skips it there)
# Reports: build/node-e2e/<dockyardd|containerd|dockyardd-subset>/. NODE_E2E_ARGS
# goes to hack/run-node-e2e.sh (e.g. "--procs 6"); results: /work/coord/node-e2e-results.md.
.PHONY: node-e2e-tools node-e2e node-e2e-containerd node-e2e-subset

node-e2e-tools: deps images tools kubelet
	hack/install-node-e2e.sh
	hack/build-node-e2e-images.sh

node-e2e: node-e2e-tools
	hack/run-node-e2e.sh --runtime dockyardd $(NODE_E2E_ARGS)

node-e2e-containerd: node-e2e-tools
	hack/run-node-e2e.sh --runtime containerd $(NODE_E2E_ARGS)

node-e2e-subset: node-e2e-tools
	$(VENV)/bin/pytest -q tests/e2e/test_node_e2e.py

# --- A one-node cluster (issue 17): control plane + kubelet on dockyardd ---------
#   make cluster-tools  etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#                       kubectl v1.37 into build/bin (hack/install-cluster.sh)
#   make cluster-e2e    tests/e2e/test_cluster.py: hack/cluster.sh up, kubectl scenarios,
#                       down (not in make test yet: not bounded; root-tests lock)
.PHONY: cluster-tools cluster-e2e

cluster-tools: $(STAMPS)/apt
	hack/install-cluster.sh

cluster-e2e: deps critest-tools kubelet cluster-tools
	DOCKYARD_CLUSTER=1 $(VENV)/bin/pytest -q tests/e2e/test_cluster.py

# --- The test guest (issue 16): a node's kernel -------------------------------
#   make guest       Debian's kernel (extracted, not installed) and the guest's initramfs
#   make test-guest  boot it under qemu (cgroup v2 only, systemd PID 1, AppArmor),
#                    run tests/guest in it, report here (tests/e2e/test_guest.py;
#                    make test runs it with tests/e2e)
#   make critest-guest  critest's whole suite in the guest against dockyardd with
#                    the systemd cgroup driver (make test runs a subset)
#   make bench-guest bench/runtime.py and bench/pod.py in the guest, systemd
#                    driver, against Debian's runc, crun and containerd
.PHONY: guest test-guest critest-guest bench-guest
guest: $(STAMPS)/apt
	hack/guest/build.sh

test-guest: deps images guest
	DOCKYARD_GUEST_ALL=1 $(VENV)/bin/pytest -q tests/e2e/test_guest.py

critest-guest: deps images guest critest-tools
	hack/guest/run.py --timeout 3600 -- DOCKYARD_CRITEST_ALL=1 .venv/bin/python -m pytest -v -p no:cacheprovider \
	    tests/guest/test_critest_systemd.py

bench-guest: deps images guest critest-tools
	hack/guest/run.py --timeout 5400 -- hack/guest/bench.sh
