# The two commands of a fresh clone: `make demo` and `make test`. Both install what they need.
PNPM_VERSION := 12.4.2
SHELL := /bin/bash

.PHONY: setup demo test bench

setup:
	@bash scripts/setup.sh

demo: setup
	pnpm run demo -- $(ARGS)

test: setup
	pnpm test

bench: setup
	pnpm run bench
