# Entry points. `make test` and `make demo` install missing Debian packages (as root),
# configure, build and run. BUILD_DIR, CMAKE_FLAGS and CTEST_FLAGS may be overridden.
#
#   make test    the whole suite: unit, integration, fault injection, property, fuzzing (bounded),
#                SocketCAN in a guest kernel, deployment; then all of it again (but the fuzzers,
#                valgrind and the guest-kernel tests) built with ASan+UBSan, failing on any report
#   make check   the suite once, without fuzzing and the sanitizer pass
#   make check-format, make check-deps   the tree's format and folder rules (in the suite too)
#   make demo    the whole stack on the simulator
BUILD_DIR ?= build
ASAN_DIR ?= $(BUILD_DIR)-asan
CMAKE_FLAGS ?=
CTEST_FLAGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# Every test runs once: a test that starts real processes waits on the events it needs with
# generous deadlines, so a failure is a failure, never retried.
CTEST_RUN = ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)
# After each run: the skipped tests (a capability this machine lacks), each with its reason.
SKIPS = sh $(CURDIR)/tools/test-skips.sh .
# Tests that boot a user-mode Linux kernel cannot run ASan binaries (no room for the shadow
# memory in the guest), valgrind cannot run them either, and the fuzzers carry their own.
ASAN_EXCLUDE = -LE 'vcan|fuzz|memcheck' -E 'deploy_systemd'

.PHONY: all deps configure build test check test-asan demo asan install clean check-format \
	format check-deps

all: build

deps:
	@sh tools/deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && { $(CTEST_RUN); rc=$$?; $(SKIPS); exit $$rc; }
	$(MAKE) --no-print-directory test-asan

# The tree's own rules, also run by ctest (label tree): .clang-format on every C file, and
# DESIGN.md's folder rules on every #include.
check-format: deps
	sh tools/check_format.sh

format: deps
	sh tools/check_format.sh --fix

check-deps:
	python3 tools/check_deps.py

check: build
	cd $(BUILD_DIR) && { $(CTEST_RUN) -LE fuzz; rc=$$?; $(SKIPS); exit $$rc; }

test-asan: deps
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DBIC_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_DIR) -j $(JOBS)
	rm -rf $(ASAN_DIR)/sanitizer-reports && mkdir -p $(ASAN_DIR)/sanitizer-reports
	cd $(ASAN_DIR) && \
	  export ASAN_OPTIONS=log_path=$(abspath $(ASAN_DIR))/sanitizer-reports/asan:detect_leaks=1 \
	  UBSAN_OPTIONS=log_path=$(abspath $(ASAN_DIR))/sanitizer-reports/ubsan:print_stacktrace=1 && \
	  { $(CTEST_RUN) $(ASAN_EXCLUDE); rc=$$?; $(SKIPS); exit $$rc; }
	@if [ -n "$$(ls -A $(ASAN_DIR)/sanitizer-reports)" ]; then \
	  echo "sanitizer reports from processes started by the tests:"; \
	  cat $(ASAN_DIR)/sanitizer-reports/*; exit 1; \
	else echo "sanitizers: no reports"; fi

asan: test-asan

demo: build
	sh tools/demo.sh $(BUILD_DIR)

install: build
	cmake --install $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
