# spikeserve: one plain Makefile. `make` builds everything into build/, `make test` runs
# every tier, `make bench` the benchmarks, `make proto` regenerates the protobuf code.
# SANITIZER=address|undefined|thread builds into build-$(SANITIZER)/ with that sanitizer.

PYTHON ?= /usr/bin/python3
CC ?= cc
SANITIZER ?=
OPT ?= -O2

ifeq ($(SANITIZER),)
BUILD ?= build
else
BUILD ?= build-$(subst $(comma),-,$(SANITIZER))
endif
comma := ,

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
        -Wcast-qual
CPPFLAGS += -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Iproto -Iengine -Iserver -Iclients/c
CFLAGS ?= $(OPT) -g
CFLAGS += -std=c11 -fPIC -MMD -MP
LDLIBS += -lz -lm -lpthread
ifneq ($(SANITIZER),)
CFLAGS += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SANITIZER)
endif
# ifunc resolvers (target_clones) run before the ThreadSanitizer runtime is initialised and
# crash it: a thread-sanitized build keeps only the default clone of each function
ifneq ($(findstring thread,$(SANITIZER)),)
CPPFLAGS += -D'target_clones(...)='
endif

PB_LIBS := -lprotobuf-c
HTTP_LIBS := -lmicrohttpd -ljansson -lnghttp2
CURL_LIBS := -lcurl

# Sources by folder. Programs have a main and are listed explicitly; everything else in a
# folder goes into that folder's library.
ENGINE_SRC := $(wildcard engine/*.c)
PROTO_SRC := proto/model.pb-c.c proto/api.pb-c.c proto/service.pb-c.c proto/health.pb-c.c \
             proto/model_config.pb-c.c proto/grpc_service.pb-c.c
SERVER_MAINS := server/main.c server/run.c
SERVER_SRC := $(filter-out $(SERVER_MAINS),$(wildcard server/*.c))
CLIENT_MAINS := $(wildcard clients/c/spikectl.c clients/c/example.c)
CLIENT_SRC := $(filter-out $(CLIENT_MAINS),$(wildcard clients/c/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
E2E_SRC := $(wildcard tests/e2e/test_*.c)
TEST_SUPPORT_SRC := $(wildcard tests/support/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_ENGINE := $(BUILD)/libspkengine.a
LIB_SERVER := $(BUILD)/libspkserver.a
LIB_CLIENT := $(BUILD)/libspikeclient.a
LIB_TESTSUP := $(BUILD)/libtestsupport.a
SO_ENGINE := $(BUILD)/libspkengine.so

PROGRAMS := $(if $(wildcard server/run.c),$(BUILD)/spikeserve-run) $(if $(wildcard server/main.c),$(BUILD)/spikeserve) \
            $(if $(wildcard clients/c/spikectl.c),$(BUILD)/spikectl) \
            $(if $(wildcard clients/c/example.c),$(BUILD)/spikeclient-example)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
E2E_BINS := $(patsubst tests/e2e/%.c,$(BUILD)/tests/%,$(E2E_SRC))

FUZZ_SMOKE_SECONDS ?= 20
export FUZZ_SMOKE_SECONDS
.PHONY: fuzz-build all test test-unit test-engine test-e2e test-python test-cluster test-deploy bench \
        bench-engine bench-server bench-grpc bench-wal bench-ui bench-oip bench-ring bench-move soak \
        proto run clean fuzz install docker docker-test deps
all: $(LIB_ENGINE) $(SO_ENGINE) $(PROGRAMS) $(UNIT_BINS) $(E2E_BINS)

$(BUILD)/obj/proto/%.o: proto/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -w -c $< -o $@
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c $< -o $@

# the raster page is assembled into ui.o (.incbin, a path relative to the repository root)
$(BUILD)/obj/server/ui.o: server/ui/index.html

$(LIB_ENGINE): $(call obj,$(ENGINE_SRC) proto/model.pb-c.c)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(SO_ENGINE): $(call obj,$(ENGINE_SRC) proto/model.pb-c.c)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(PB_LIBS) $(LDLIBS)
$(LIB_SERVER): $(call obj,$(SERVER_SRC) proto/api.pb-c.c proto/service.pb-c.c proto/health.pb-c.c \
              proto/model_config.pb-c.c proto/grpc_service.pb-c.c)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
# the client library carries its protobuf code, so an installed libspikeclient.a links alone
$(LIB_CLIENT): $(call obj,$(CLIENT_SRC) $(PROTO_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIB_TESTSUP): $(call obj,$(TEST_SUPPORT_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

ALL_LIBS = $(LIB_TESTSUP) $(LIB_CLIENT) $(LIB_SERVER) $(LIB_ENGINE)
LINK_ALL = $(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(ALL_LIBS) $(HTTP_LIBS) $(CURL_LIBS) \
           $(PB_LIBS) $(LDLIBS)

$(BUILD)/spikeserve: $(call obj,server/main.c) $(LIB_SERVER) $(LIB_ENGINE)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB_SERVER) $(LIB_ENGINE) $(HTTP_LIBS) $(CURL_LIBS) $(PB_LIBS) $(LDLIBS)
$(BUILD)/spikeserve-run: $(call obj,server/run.c) $(LIB_SERVER) $(LIB_ENGINE)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB_SERVER) $(LIB_ENGINE) $(HTTP_LIBS) $(CURL_LIBS) $(PB_LIBS) $(LDLIBS)
# the client programs need only the client library (and libcurl, jansson, protobuf-c, zlib)
$(BUILD)/spikectl: $(call obj,clients/c/spikectl.c) $(LIB_CLIENT)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB_CLIENT) -ljansson $(CURL_LIBS) $(PB_LIBS) $(LDLIBS)
$(BUILD)/spikeclient-example: $(call obj,clients/c/example.c) $(LIB_CLIENT)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB_CLIENT) -ljansson $(CURL_LIBS) $(PB_LIBS) $(LDLIBS)
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(LINK_ALL)
$(BUILD)/tests/%: $(BUILD)/obj/tests/e2e/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(LINK_ALL)

# ---- tests: every tier; tests/run.sh prints "N passed, N failed" at the end ----
test: all fuzz-build
	@tests/run.sh $(BUILD) $(PYTHON)
test-unit: all
	@tests/run.sh $(BUILD) $(PYTHON) unit
test-engine: all
	@tests/run.sh $(BUILD) $(PYTHON) engine
test-e2e: all
	@tests/run.sh $(BUILD) $(PYTHON) e2e
test-python: all
	@tests/run.sh $(BUILD) $(PYTHON) python
# replicas behind the real nginx and HAProxy (issue 15; part of `make test`)
test-cluster: all
	@tests/run.sh $(BUILD) $(PYTHON) cluster
# deploy/kubernetes against the Kubernetes schemas (npm packages in tests/deploy); the ring
# and the real nginx and HAProxy in front of replicas are unit/test_ring, e2e/test_ring_*
test-deploy:
	@tests/run.sh $(BUILD) $(PYTHON) deploy

# ---- benchmarks (ratios measured in one run; never pass/fail on time) ----
# tests/bench/*.c -> $(BUILD)/bench/* (built by `all` too, so they cannot rot unnoticed)
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
all: $(BENCH_BINS)
$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(LIB_ENGINE)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB_ENGINE) $(PB_LIBS) $(LDLIBS)
# the gRPC load generator: libnghttp2's client side and api.proto's C code
$(BUILD)/bench/bench_grpc: $(call obj,tests/bench/bench_grpc.c proto/api.pb-c.c proto/model.pb-c.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lnghttp2 $(PB_LIBS) $(LDLIBS)
# the session ring's simulation links server/ring.c alone
$(BUILD)/bench/ring_sim: $(call obj,tests/bench/ring_sim.c server/ring.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
# one session moved between two servers through the snapshot API (libcurl)
$(BUILD)/bench/bench_move: $(call obj,tests/bench/bench_move.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CURL_LIBS) $(LDLIBS)
bench: bench-engine bench-server bench-grpc bench-wal bench-ui bench-oip bench-ring bench-move
# the ring at 10, 100 and 1,000 replicas and 10 million sessions: load imbalance and sessions
# moved per scale event (deploy/README.md has the table)
bench-ring: $(BUILD)/bench/ring_sim
	$(BUILD)/bench/ring_sim
# what moving one session costs (snapshot bytes, GET + PUT + DELETE time) for each zoo model
bench-move: all
	tests/bench/bench_move.sh $(BUILD)
bench-engine: all
	$(PYTHON) tests/bench/bench_engine.py --build $(BUILD)
bench-server: all
	tests/bench/bench_server.sh $(BUILD)
# gRPC against HTTP/1.1 on the same server: unary Step vs /steps, one StreamSteps call vs one
# keep-alive connection and vs /stream + /events, server CPU per batch
bench-grpc: all
	tests/bench/bench_grpc.sh $(BUILD)
# what --wal costs: /steps requests/s without a state directory, with checkpoints, with --wal
bench-oip: all
	tests/bench/bench_oip.sh $(BUILD)

bench-wal: all
	tests/bench/bench_wal.sh $(BUILD)
# the raster page in headless Chromium: draw time per frame by spikes in view, ingest, a live
# session followed (tests/ui's npm packages: npm ci there first)
bench-ui: $(BUILD)/spikeserve
	cd tests/ui && { [ -e node_modules/.package-lock.json ] || npm ci --no-audit --no-fund; }
	SPIKESERVE_BUILD=$(BUILD) node tests/bench/bench_ui.mjs
# ten minutes (SOAK_SECONDS) of mixed load with SIGKILLs and restarts; not part of make test
soak: all
	tests/soak/soak.sh $(BUILD)

# ---- fuzzing: libFuzzer harnesses tests/fuzz/fuzz_*.c (clang), seeds in tests/fuzz/corpus/NAME ----
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 600
FUZZ_LIBS_SRC := $(ENGINE_SRC) $(PROTO_SRC) $(SERVER_SRC)
build-fuzz/%: tests/fuzz/%.c $(FUZZ_LIBS_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  $(CPPFLAGS) -o $@ $^ $(HTTP_LIBS) $(CURL_LIBS) $(PB_LIBS) $(LDLIBS)
fuzz-build: $(FUZZ_BINS)
# `make fuzz` runs each harness FUZZ_SECONDS (default 600); make test runs them briefly.
fuzz: $(FUZZ_BINS)
	@for b in $(FUZZ_BINS); do n=$$(basename $$b); mkdir -p build-fuzz/corpus/$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  $$b -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build-fuzz/corpus/$$n tests/fuzz/corpus/$$n \
	  || exit 1; done

PROTOS := model.proto api.proto service.proto health.proto model_config.proto grpc_service.proto
proto:
	cd proto && protoc-c --c_out=. $(PROTOS) && protoc --python_out=. $(PROTOS) && \
	  $(PYTHON) -m grpc_tools.protoc -I. --grpc_python_out=. service.proto health.proto grpc_service.proto && \
	  $(PYTHON) client_only.py service_pb2_grpc.py health_pb2_grpc.py grpc_service_pb2_grpc.py

# builds just the server (a newcomer's first command should not wait for the test programs)
run: $(BUILD)/spikeserve
	$(BUILD)/spikeserve --model-dir models/zoo --bind 127.0.0.1 --port 8080

# ---- Debian packages: `make`, `make run` and `make test` first check what they need and
# install what is missing (as root) or print the exact apt-get command and stop ----
DEPS_BUILD := build-essential pkg-config libmicrohttpd-dev libjansson-dev libprotobuf-c-dev \
              libcurl4-openssl-dev zlib1g-dev libnghttp2-dev
DEPS_GOALS := $(if $(MAKECMDGOALS),$(MAKECMDGOALS),all)
ifneq ($(filter test test-% bench% fuzz%,$(DEPS_GOALS)),)
DEPS_NEEDED := $(shell grep -v '^\#' .ci/packages)
else ifneq ($(filter all run install $(BUILD)/%,$(DEPS_GOALS)),)
DEPS_NEEDED := $(DEPS_BUILD)
endif
ifneq ($(DEPS_NEEDED),)
ifneq ($(shell .ci/deps.sh $(DEPS_NEEDED) >&2 && echo ok),ok)
$(error missing Debian packages: see the message above)
endif
endif
deps:
	@.ci/deps.sh $$(grep -v '^#' .ci/packages)

# ---- install: PREFIX=/usr/local (and DESTDIR) ----
PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/share/spikeserve/models $(DESTDIR)$(PREFIX)/share/spikeserve/python
	install -m 0755 $(filter-out %-example,$(PROGRAMS)) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(LIB_CLIENT) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 clients/c/spikeclient.h $(DESTDIR)$(PREFIX)/include/
	install -m 0644 clients/python/spikeserve.py $(DESTDIR)$(PREFIX)/share/spikeserve/python/
	for f in models/zoo/*.spk models/zoo/*.md; do [ ! -e "$$f" ] || \
	  install -m 0644 "$$f" $(DESTDIR)$(PREFIX)/share/spikeserve/models/ || exit 1; done

# ---- Docker image (built with podman by ../shared/docker-build.sh: no Docker engine here) ----
SHARED ?= ../shared
DOCKER_TAG ?= localhost/spikeserve:dev
docker:
	$(SHARED)/docker-build.sh build $(DOCKER_TAG)
# build the image, check its configuration, serve a session from it, stop it with SIGTERM
docker-test:
	SHARED=$(SHARED) tests/docker_test.sh localhost/spikeserve:test

clean:
	rm -rf build build-*

# object files are kept between builds (make would delete them as intermediates and rebuild
# every test program next time)
.SECONDARY:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
