/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fulcrum-cp: the control plane daemon. Runs in the foreground, logs to
 * stderr; SIGHUP reloads the config, SIGTERM/SIGINT exit and leave the
 * published tables to the data plane (fail static).
 *
 * Exit status: 0 clean exit (or a valid config with --check-config),
 * 1 runtime failure, 2 bad config or arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "config.h"
#include "ctl.h"
#include "daemon.h"
#include "metrics.h"

#define PROG "fulcrum-cp"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " -c CONFIG\n"
		"       " PROG " --check-config CONFIG\n"
		"\n"
		"Runs the control plane in the foreground: health checks every backend of\n"
		"CONFIG and publishes the tables into the shared memory of global.shm_name.\n"
		"SIGHUP reloads CONFIG (a broken file is logged and the running config\n"
		"stays); SIGTERM or SIGINT exit, leaving the tables to the data plane.\n"
		"Serves global.control_socket (fulcrumctl) and, when global.metrics_listen\n"
		"is set, Prometheus metrics on http://ADDR:PORT/metrics.\n"
		"\n"
		"  -c, --config CONFIG    the config file\n"
		"  --check-config CONFIG  validate CONFIG and exit: 0 valid, 2 not\n"
		"  -h, --help             this text\n"
		"\n"
		"Exit status: 0 clean exit, 1 runtime failure, 2 bad config or arguments.\n");
}

static bool uses_half_open(const struct fl_config *cfg)
{
	for (unsigned v = 0; v < cfg->n_vips; v++)
		for (unsigned b = 0; b < cfg->vips[v].n_backends; b++)
			if (cfg->vips[v].backends[b].hc.type == FL_HC_TCP_HALF_OPEN)
				return true;
	return false;
}

/* A valid config is valid whoever checks it, but tcp-half-open checks run
 * only with CAP_NET_RAW: say so when this process could not run them (the
 * same process started as the daemon would refuse the config). */
static void warn_half_open_capability(const struct fl_config *cfg)
{
	int fd;

	if (!uses_half_open(cfg))
		return;
	fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd >= 0) {
		close(fd);
		return;
	}
	fprintf(stderr, "warning: tcp-half-open checks need CAP_NET_RAW, which this process "
		"lacks (%s): fulcrum-cp started like this would refuse the config\n", strerror(errno));
}

static int check_config(const char *path)
{
	struct fl_config cfg;
	char err[FL_CONFIG_ERR_LEN];

	if (fl_config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	printf("%s: valid: %u VIPs\n", path, cfg.n_vips);
	warn_half_open_capability(&cfg);
	fl_config_free(&cfg);
	return 0;
}

/*
 * Every checked backend keeps one socket open (cp/health.h), so the
 * soft limit of 1,024 a shell gives would fail the 1,000th check: take the
 * hard limit. Backends past what even that allows are said once here; their
 * checks fail with "Too many open files" and mark them down.
 */
static void raise_fd_limit(size_t backends)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
			return;
	}
	/* room for the listeners, clients, shared memory, netlink and logs */
	if (rl.rlim_cur != RLIM_INFINITY && backends + 256 > rl.rlim_cur)
		fl_log(FL_LOG_WARN, "%zu backends to check, but the open-file limit is %llu: raise it "
		       "(ulimit -n, LimitNOFILE=)", backends, (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct fl_cp cp;
	struct fl_ctl *ctl = NULL;
	struct fl_metrics *metrics = NULL;
	const char *config = NULL;
	char err[FL_CONFIG_ERR_LEN];
	int c, rc;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'C':
			return check_config(optarg);
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config || optind != argc) {
		fprintf(stderr, PROG ": %s\n", config ? "unexpected argument" : "no config given (-c CONFIG)");
		usage(stderr);
		return 2;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	raise_fd_limit(0);
	rc = fl_cp_init(&cp, config, err, sizeof(err));
	if (rc < 0) {
		fl_log(FL_LOG_ERROR, "cannot start: %s", err);
		return rc == -EINVAL ? 2 : 1;
	}
	/* the socket and metrics listeners stay as they started: a reload
	 * changing their settings takes effect at restart */
	rc = fl_ctl_open(&cp, cp.cfg.global.control_socket, cp.cfg.global.control_socket_mode,
			 &ctl, err, sizeof(err));
	if (rc == 0 && cp.cfg.global.metrics_listen[0])
		rc = fl_metrics_open(&cp, cp.cfg.global.metrics_listen, &metrics, err, sizeof(err));
	if (rc < 0) {
		fl_log(FL_LOG_ERROR, "cannot start: %s", err);
		fl_ctl_close(ctl);
		fl_cp_fini(&cp);
		return 1;
	}
	fl_log(FL_LOG_INFO, "running with %s: %zu backends, control socket %s", config, cp.n_backends,
	       cp.cfg.global.control_socket);
	raise_fd_limit(cp.n_backends);
	rc = fl_cp_run(&cp);
	if (rc < 0)
		fl_log(FL_LOG_ERROR, "event loop: %s", strerror(-rc));
	fl_metrics_close(metrics);
	fl_ctl_close(ctl);
	fl_cp_fini(&cp);
	return rc < 0 ? 1 : 0;
}
