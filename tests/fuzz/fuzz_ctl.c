/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer harness over the control socket's request handler
 * (fl_ctl_handle): a real fl_cp on a private shared-memory file, fed each
 * line of the input as the server would. Every answer must be one JSON
 * object with a boolean "ok" and no newline; anything else aborts.
 *
 * libFuzzer: a clang build of the tree (CC=clang meson setup build-clang)
 * makes tests/fuzz/fuzz_ctl_lf; run it on a copy of the seed corpus:
 *   cp -r tests/fuzz/corpus /tmp/c && build-clang/tests/fuzz/fuzz_ctl_lf \
 *     -max_len=4096 -max_total_time=600 /tmp/c
 * Without libFuzzer, standalone.c runs it over the seed corpus (meson test
 * suite `fuzz`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#include "ctl.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fl_cp cp;
static char dir[] = "/tmp/fulcrum-fuzz-ctl.XXXXXX";

static void cleanup(void)
{
	char path[128];

	fl_cp_fini(&cp);
	snprintf(path, sizeof(path), "%s/shm", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/fuzz.conf", dir);
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[128], err[FL_CONFIG_ERR_LEN];
	FILE *f;

	(void)argc, (void)argv;
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/fuzz.conf", dir);
	f = fopen(path, "w");
	if (!f)
		abort();
	/* checks of type none: the handler runs without sockets of its own */
	fprintf(f,
		"global: { shm_name = \"%s/shm\"; log_level = \"error\"; };\n"
		"limits: { max_vips = 8; max_backends = 64; ring_entries = 16384; max_workers = 2; };\n"
		"dataplane: { mode = \"dpdk\"; dpdk: { ports = ( { device = \"net_null0\"; queues = 1; } );\n"
		"  workers = [ 1 ]; }; next_hop: { mac = \"02:00:00:00:00:01\"; };\n"
		"  tunnel_source_v4 = \"10.0.0.2\"; tunnel_source_v6 = \"fd00::2\"; };\n"
		"healthcheck: { type = \"none\"; };\n"
		"vips = ( { name = \"web\"; address = \"10.0.0.100\"; port = 80; protocol = \"tcp\";\n"
		"  method = \"ipip\"; table_size = 1021;\n"
		"  backends = ( { address = \"10.1.0.2\"; }, { address = \"10.1.0.3\"; weight = 50; } ); } );\n",
		dir);
	fclose(f);
	if (fl_cp_init(&cp, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_ctl: %s\n", err);
		abort();
	}
	atexit(cleanup);
	return 0;
}

static void one(const char *line, size_t len)
{
	char *a = fl_ctl_handle(&cp, line, len);
	struct json_object *o, *ok;

	if (!a)
		abort();	/* only out of memory may give no answer */
	o = json_tokener_parse(a);
	if (!o || strchr(a, '\n') || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "ok", &ok) || !json_object_is_type(ok, json_type_boolean)) {
		fprintf(stderr, "fuzz_ctl: bad answer: %s\n", a);
		abort();
	}
	json_object_put(o);
	free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;

	if (!cp.have_cfg)
		LLVMFuzzerInitialize(NULL, NULL);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);

		one(p, len);
		p += len + 1;
	}
	/* publish what the requests changed, as the loop's end would */
	fl_cp_publish(&cp, false);
	return 0;
}
