/* tonghop_watch.c -- `tonghop watch`: follow the collector's rollup stream
 * (collector/QUERY.md, "Rollup stream") and print one line per changed node.
 * A jump of more than one in a node's version means messages were missed:
 * the line says so (re-read the node with `tonghop rollup`). */
#include "tonghop.h"

#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
	if (m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	size_t kl = strlen(key);
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
		    !memcmp(k->via.str.ptr, key, kl))
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

static uint64_t map_uint(const msgpack_object *m, const char *key)
{
	const msgpack_object *v = map_get(m, key);
	return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

static void map_str(const msgpack_object *m, const char *key, char *buf, size_t cap)
{
	const msgpack_object *v = map_get(m, key);
	buf[0] = 0;
	if (v && v->type == MSGPACK_OBJECT_STR) {
		size_t n = v->via.str.size < cap - 1 ? v->via.str.size : cap - 1;
		memcpy(buf, v->via.str.ptr, n);
		buf[n] = 0;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)buf[i] < 0x20)
				buf[i] = '?';
	}
}

/* Last version seen per node (unit+appendix+period), for gap detection. */
typedef struct seen {
	char key[3 * 65 + 4];
	uint64_t version;
} seen;

int th_cmd_watch(const char *pub, const char *key_file, const char *server_key, int insecure,
                 long level, const char *unit, long count)
{
	int ret = 1;
	void *ctx = zmq_ctx_new(), *sub = NULL;
	seen *tab = NULL;
	size_t n_tab = 0;
	if (!ctx)
		goto out;
	sub = zmq_socket(ctx, ZMQ_SUB);
	if (!sub)
		goto out;
	if (!insecure) {
		if (!key_file || !server_key) {
			fprintf(stderr, "tonghop watch: give --key FILE and --server-key FILE (or --insecure "
			                "for a local demo collector)\n");
			ret = 2;
			goto out;
		}
		char why[512];
		if (th_keyfile_curve_client(sub, server_key, key_file, why, sizeof why) != 0) {
			fprintf(stderr, "tonghop watch: %s\n", why);
			goto out;
		}
	}
	char topic[160] = "";
	if (level > 0 && unit)
		snprintf(topic, sizeof topic, "L%ld\x1f%s\x1f", level, unit);
	else if (level > 0)
		snprintf(topic, sizeof topic, "L%ld\x1f", level);
	if (zmq_setsockopt(sub, ZMQ_SUBSCRIBE, topic, strlen(topic)) || zmq_connect(sub, pub)) {
		fprintf(stderr, "tonghop watch: %s: %s\n", pub, zmq_strerror(zmq_errno()));
		goto out;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "tonghop watch: following %s%s (Ctrl-C stops)\n", pub,
	        level > 0 ? " (filtered)" : "");
	long got = 0;
	th_sockopts so = TH_SOCKOPTS_INIT;
	so.rcvtimeo_ms = 200;
	th_sock_set(sub, &so);
	while (!stop && (count <= 0 || got < count)) {
		zmq_msg_t t, b;
		zmq_msg_init(&t);
		zmq_msg_init(&b);
		if (zmq_msg_recv(&t, sub, 0) < 0) {
			zmq_msg_close(&t);
			zmq_msg_close(&b);
			continue;      /* timeout or signal: check the flags */
		}
		int more = zmq_msg_more(&t);
		if (!more || zmq_msg_recv(&b, sub, 0) < 0) {
			zmq_msg_close(&t);
			zmq_msg_close(&b);
			continue;
		}
		while (zmq_msg_more(&b)) {       /* drop unexpected extra frames */
			zmq_msg_t x;
			zmq_msg_init(&x);
			int r = zmq_msg_recv(&x, sub, 0);
			int m = r >= 0 && zmq_msg_more(&x);
			zmq_msg_close(&x);
			if (!m)
				break;
		}
		msgpack_unpacked up;
		msgpack_unpacked_init(&up);
		size_t off = 0;
		if (msgpack_unpack_next(&up, zmq_msg_data(&b), zmq_msg_size(&b), &off) ==
		        MSGPACK_UNPACK_SUCCESS &&
		    up.data.type == MSGPACK_OBJECT_MAP) {
			const msgpack_object *m = &up.data;
			char u[65], a[65], p[17], when[32];
			map_str(m, "unit", u, sizeof u);
			map_str(m, "appendix", a, sizeof a);
			map_str(m, "period", p, sizeof p);
			/* an exact unit filter when only --unit was given */
			if (unit && level <= 0 && strcmp(unit, u)) {
				msgpack_unpacked_destroy(&up);
				zmq_msg_close(&t);
				zmq_msg_close(&b);
				continue;
			}
			uint64_t ver = map_uint(m, "version");
			time_t now = time(NULL);
			struct tm tm;
			localtime_r(&now, &tm);
			strftime(when, sizeof when, "%H:%M:%S", &tm);
			char key[sizeof tab->key];
			snprintf(key, sizeof key, "%s\x1f%s\x1f%s", u, a, p);
			const char *gap = "";
			size_t i;
			for (i = 0; i < n_tab && strcmp(tab[i].key, key); i++)
				;
			if (i == n_tab) {
				seen *nt = realloc(tab, (n_tab + 1) * sizeof *nt);
				if (nt) {
					tab = nt;
					snprintf(tab[n_tab].key, sizeof tab[n_tab].key, "%s", key);
					tab[n_tab].version = ver;
					n_tab++;
				}
			} else {
				if (ver > tab[i].version + 1)
					gap = "  GAP: missed updates, re-read with `tonghop rollup`";
				tab[i].version = ver;
			}
			printf("%s  L%" PRIu64 " %-8s %s %s  version %" PRIu64 "  commit %" PRIu64
			       "  reported %" PRIu64 "/%" PRIu64 "  on time %" PRIu64 "  late %" PRIu64 "%s\n",
			       when, map_uint(m, "level"), u, a, p, ver, map_uint(m, "commit"),
			       map_uint(m, "reported"), map_uint(m, "expected"), map_uint(m, "on_time"),
			       map_uint(m, "late"), gap);
			fflush(stdout);
			got++;
		} else {
			fprintf(stderr, "tonghop watch: a message that is not a rollup map, ignored\n");
		}
		msgpack_unpacked_destroy(&up);
		zmq_msg_close(&t);
		zmq_msg_close(&b);
	}
	ret = 0;
out:
	free(tab);
	if (sub) {
		int zero = 0;
		zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
		zmq_close(sub);
	}
	if (ctx)
		zmq_ctx_term(ctx);
	return ret;
}
