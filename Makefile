# Entry points. `make test` and `make demo` install missing Debian packages (as root),
# configure, build and run. BUILD_DIR and CMAKE_FLAGS may be overridden.
BUILD_DIR ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps configure build test demo asan clean install

all: build

deps:
	@sh tools/deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

demo: build
	sh tools/demo.sh $(BUILD_DIR)

asan:
	$(MAKE) test BUILD_DIR=build-asan CMAKE_FLAGS="-DBIC_SANITIZE=ON $(CMAKE_FLAGS)"

install: build
	cmake --install $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) build-asan
