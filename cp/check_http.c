/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The http and https checks: GET path with Host, "Connection: close"; the
 * status must be one of expect_status and, when expect_body is set, the
 * first FL_HTTP_BUF bytes of the answer must contain it. https goes through
 * OpenSSL with a non-blocking handshake; the certificate is verified (chain
 * against the system store, name against http_host or the address) only
 * with tls_verify.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "health.h"

#define FL_HTTP_BUF 16384

enum http_step { ST_CONNECT, ST_HANDSHAKE, ST_SEND, ST_RECV };

struct http_probe {
	SSL *ssl;
	enum http_step step;
	size_t req_len;
	size_t req_off;
	size_t len;
	int status;			/* 0 until the status line is read */
	char req[2 * FL_TEXT_LEN + 160];
	char buf[FL_HTTP_BUF + 1];
};

static SSL_CTX *tls_ctx[2];

SSL_CTX *fl_check_tls_ctx(bool verify, char *err, size_t errlen)
{
	SSL_CTX *ctx = tls_ctx[verify];

	if (ctx)
		return ctx;
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, errlen, "SSL_CTX_new: %s", ERR_reason_error_string(ERR_get_error()));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* a check is one request: no session to resume, no renegotiation */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			snprintf(err, errlen, "no default CA store: %s",
				 ERR_reason_error_string(ERR_get_error()));
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	tls_ctx[verify] = ctx;
	return ctx;
}

void fl_check_tls_fini(void)
{
	for (int i = 0; i < 2; i++) {
		SSL_CTX_free(tls_ctx[i]);
		tls_ctx[i] = NULL;
	}
}

static void probe_free(struct fl_checker *c)
{
	struct http_probe *p = c->probe;

	if (!p)
		return;
	SSL_free(p->ssl);
	free(p);
	c->probe = NULL;
}

static void finish(struct fl_checker *c, bool ok)
{
	probe_free(c);
	fl_checker_done(c, ok);
}

static bool is_ip(const char *s)
{
	unsigned char b[16];

	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static int tls_setup(struct fl_checker *c, struct http_probe *p)
{
	char err[128];
	SSL_CTX *ctx = fl_check_tls_ctx(c->hc.tls_verify, err, sizeof(err));
	const char *host = c->hc.http_host;
	char ip[FL_TEXT_LEN];

	if (!ctx || !(p->ssl = SSL_new(ctx)) || SSL_set_fd(p->ssl, c->io.fd) != 1) {
		snprintf(c->reason, sizeof(c->reason), "tls: %s", ctx ? "SSL_new failed" : err);
		return -ENOMEM;
	}
	if (host[0] && !is_ip(host))
		SSL_set_tlsext_host_name(p->ssl, host);
	if (!c->hc.tls_verify)
		return 0;
	if (host[0] && !is_ip(host))
		return SSL_set1_host(p->ssl, host) == 1 ? 0 : -ENOMEM;
	/* the certificate must name the address checked */
	snprintf(ip, sizeof(ip), "%s", host[0] ? host : c->target_text);
	if (!host[0]) {
		char *colon = strrchr(ip, ':');
		if (colon)
			*colon = '\0';
		if (ip[0] == '[') {
			memmove(ip, ip + 1, strlen(ip));
			ip[strlen(ip) - 1] = '\0';
		}
	}
	return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(p->ssl), ip) == 1 ? 0 : -EINVAL;
}

/* What an SSL call that did not complete wants: 0 = wait for the socket
 * (it is watched both ways), -1 = failed (reason set). */
static int tls_want(struct fl_checker *c, struct http_probe *p, int r, const char *what)
{
	int e = SSL_get_error(p->ssl, r);
	unsigned long code;

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	if (p->step == ST_HANDSHAKE && SSL_get_verify_result(p->ssl) != X509_V_OK) {
		snprintf(c->reason, sizeof(c->reason), "tls %s: certificate: %s", what,
			 X509_verify_cert_error_string(SSL_get_verify_result(p->ssl)));
	} else if ((code = ERR_peek_last_error()) != 0) {
		snprintf(c->reason, sizeof(c->reason), "tls %s: %s", what,
			 ERR_reason_error_string(code) ? ERR_reason_error_string(code) : "error");
	} else {
		snprintf(c->reason, sizeof(c->reason), "tls %s: %s", what,
			 e == SSL_ERROR_ZERO_RETURN ? "closed" : errno ? strerror(errno) : "connection closed");
	}
	ERR_clear_error();
	return -1;
}

static bool status_expected(const struct fl_hc_config *hc, int status)
{
	for (unsigned i = 0; i < hc->n_expect_status; i++)
		if (hc->expect_status[i] == status)
			return true;
	return false;
}

/* 1 = decided (ok or not, reason set, *ok), 0 = read more. */
static int evaluate(struct fl_checker *c, struct http_probe *p, bool eof, bool *ok)
{
	const struct fl_hc_config *hc = &c->hc;
	char *eol;

	p->buf[p->len] = '\0';
	if (p->status == 0) {
		unsigned st;
		eol = memchr(p->buf, '\n', p->len);
		if (!eol) {
			if (!eof && p->len < FL_HTTP_BUF)
				return 0;
			snprintf(c->reason, sizeof(c->reason), "http: no status line (%zu bytes)", p->len);
			*ok = false;
			return 1;
		}
		if (sscanf(p->buf, "HTTP/%*u.%*u %3u", &st) != 1 || st < 100 || st > 599) {
			snprintf(c->reason, sizeof(c->reason), "http: bad status line");
			*ok = false;
			return 1;
		}
		p->status = (int)st;
		if (!status_expected(hc, p->status)) {
			snprintf(c->reason, sizeof(c->reason), "http status %d", p->status);
			*ok = false;
			return 1;
		}
	}
	if (hc->expect_body[0] == '\0') {
		snprintf(c->reason, sizeof(c->reason), "http status %d", p->status);
		*ok = true;
		return 1;
	}
	const char *body = memmem(p->buf, p->len, "\r\n\r\n", 4);
	if (body && memmem(body + 4, p->len - (size_t)(body + 4 - p->buf), hc->expect_body,
			   strlen(hc->expect_body))) {
		snprintf(c->reason, sizeof(c->reason), "http status %d, body matches", p->status);
		*ok = true;
		return 1;
	}
	if (!eof && p->len < FL_HTTP_BUF)
		return 0;
	snprintf(c->reason, sizeof(c->reason), "http status %d, body lacks \"%.60s\"", p->status,
		 hc->expect_body);
	*ok = false;
	return 1;
}

/* Runs the probe until it ends or the socket would block: the socket is
 * edge-triggered, so stopping earlier would wait for an event that has
 * already come. */
static void step(struct fl_checker *c, struct http_probe *p)
{
	bool ok;
	int r;

	if (p->step == ST_HANDSHAKE) {
		ERR_clear_error();
		r = SSL_connect(p->ssl);
		if (r != 1) {
			if (tls_want(c, p, r, "handshake") < 0)
				finish(c, false);
			return;
		}
		p->step = ST_SEND;
	}
	while (p->step == ST_SEND) {
		size_t left = p->req_len - p->req_off;
		if (p->ssl) {
			ERR_clear_error();
			r = SSL_write(p->ssl, p->req + p->req_off, (int)left);
			if (r <= 0) {
				if (tls_want(c, p, r, "write") < 0)
					finish(c, false);
				return;
			}
		} else {
			ssize_t n = send(c->io.fd, p->req + p->req_off, left, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return;
				snprintf(c->reason, sizeof(c->reason), "send: %s", strerror(errno));
				finish(c, false);
				return;
			}
			r = (int)n;
		}
		p->req_off += (size_t)r;
		if (p->req_off == p->req_len)
			p->step = ST_RECV;
	}
	for (;;) {
		bool eof = false;
		size_t room = FL_HTTP_BUF - p->len;
		if (p->ssl) {
			ERR_clear_error();
			r = SSL_read(p->ssl, p->buf + p->len, (int)room);
			if (r <= 0) {
				int e = SSL_get_error(p->ssl, r);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
					if (tls_want(c, p, r, "read") < 0)
						finish(c, false);
					return;
				}
				/* close_notify or not, the answer ends here */
				ERR_clear_error();
				eof = true;
				r = 0;
			}
		} else {
			ssize_t n = recv(c->io.fd, p->buf + p->len, room, 0);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			if (n < 0 && p->len == 0) {
				snprintf(c->reason, sizeof(c->reason), "recv: %s", strerror(errno));
				finish(c, false);
				return;
			}
			eof = n <= 0;
			r = n > 0 ? (int)n : 0;
		}
		p->len += (size_t)r;
		if (eof && p->len == 0) {
			snprintf(c->reason, sizeof(c->reason), "http: closed without an answer");
			finish(c, false);
			return;
		}
		if (evaluate(c, p, eof || p->len == FL_HTTP_BUF, &ok)) {
			finish(c, ok);
			return;
		}
	}
}

static void http_ready(struct fl_checker *c, uint32_t events)
{
	struct http_probe *p = c->probe;

	if (p->step == ST_CONNECT) {
		int rc = fl_check_connect_result(c, events);
		if (rc == -EINPROGRESS)
			return;
		if (rc < 0) {
			finish(c, false);
			return;
		}
		if (c->hc.type == FL_HC_HTTPS) {
			if (tls_setup(c, p) < 0) {
				if (c->reason[0] == '\0')
					snprintf(c->reason, sizeof(c->reason), "tls: cannot set up");
				finish(c, false);
				return;
			}
			p->step = ST_HANDSHAKE;
		} else {
			p->step = ST_SEND;
		}
	}
	step(c, p);
}

static int http_start(struct fl_checker *c)
{
	struct http_probe *p = calloc(1, sizeof(*p));
	int n, rc;

	if (!p) {
		snprintf(c->reason, sizeof(c->reason), "out of memory");
		return -ENOMEM;
	}
	n = snprintf(p->req, sizeof(p->req),
		     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fulcrum-cp\r\n"
		     "Accept: */*\r\nConnection: close\r\n\r\n",
		     c->hc.http_path[0] ? c->hc.http_path : "/",
		     c->hc.http_host[0] ? c->hc.http_host : c->target_text);
	if (n < 0 || (size_t)n >= sizeof(p->req)) {
		free(p);
		snprintf(c->reason, sizeof(c->reason), "http: request too long");
		return -EINVAL;
	}
	p->req_len = (size_t)n;
	c->probe = p;
	rc = fl_checker_connect(c);
	if (rc < 0)
		probe_free(c);
	return rc;
}

static void http_abort(struct fl_checker *c)
{
	probe_free(c);
}

const struct fl_check_ops fl_check_http_ops = {
	.name = "http",
	.start = http_start,
	.ready = http_ready,
	.abort = http_abort,
};
