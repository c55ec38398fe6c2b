/* load.c -- simulates N agents speaking the real protocol (schema/PROTOCOL.md)
 * over ZeroMQ: hello, then submits of generated reports with several in
 * flight per agent, and waits for every ack.  All agents are DEALER sockets
 * multiplexed in this one process.  Prints one line of key=value figures.
 *
 * usage: th-bench-load --defs DIR --data DIR [--endpoint EP] [--agents N]
 *        [--batch B] [--inflight K] [--rate SUBMITS_PER_S] [--rev R]
 *        [--key FILE --server-key FILE] [--unit ROOT] [--pid COLLECTOR_PID]
 *        [--timeout S] [--limit N (an even sample of N reports)]
 */
#include "common.h"
#include "th_sock.h"
#include "th_wire.h"
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zmq.h>

typedef struct msg {
	uint8_t *buf;
	size_t len;
	size_t n_reports;
	double sent;
	int acked;
} msg;

typedef struct agent {
	void *sock;
	size_t first, last, next;   /* message range and next to send */
	int inflight;
	int welcomed;
} agent;

static int read_key(const char *path, char pub[41], char sec[41])
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[256];
	pub[0] = sec[0] = 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "public ", 7) == 0)
			snprintf(pub, 41, "%.40s", line + 7);
		else if (strncmp(line, "secret ", 7) == 0)
			snprintf(sec, 41, "%.40s", line + 7);
	}
	fclose(f);
	return strlen(pub) == 40 ? 0 : -1;
}

static void sample(long pid, long *hwm, long *anon)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%ld/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		long v;
		if (sscanf(line, "VmHWM: %ld", &v) == 1 && v > *hwm)
			*hwm = v;
		else if (sscanf(line, "RssAnon: %ld", &v) == 1 && v > *anon)
			*anon = v;
	}
	fclose(f);
}

/* CPU seconds (user + system) of a process: /proc/PID/stat, or this process when pid is 0. */
static double cpu_secs(long pid)
{
	if (!pid) {
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		       ru.ru_stime.tv_usec / 1e6;
	}
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');   /* the command name may hold spaces */
	unsigned long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The run's shared state: what drain() updates as acks come in. */
typedef struct run {
	msg *msgs;
	size_t n_msgs;
	agent *ag;
	uint8_t *rbuf;
	double *lat, t_last;
	size_t n_lat, acked, errors, st[5];
} run;

/* Reads every reply waiting on agent i's socket (until ZMQ_EVENTS has no POLLIN). */
static void drain(run *r, long i)
{
	void *sock = r->ag[i].sock;
	for (;;) {
		int ev = 0;
		size_t el = sizeof ev;
		if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &el) != 0 || !(ev & ZMQ_POLLIN))
			return;
		for (;;) {
			int n = zmq_recv(sock, r->rbuf, 64u << 20, ZMQ_DONTWAIT);
			if (n <= 0)
				break;
			double tr = bench_now();
			th_msg_type t;
			const char *why;
			uint64_t id = UINT64_MAX;
			if (th_wire_type(r->rbuf, (size_t)n, &t, &why) != 0)
				continue;
			if (t == TH_MSG_ACK) {
				th_ack a;
				if (th_wire_decode_ack(r->rbuf, (size_t)n, &a, &why) != 0)
					continue;
				id = a.id;
				for (size_t k = 0; k < a.n_results; k++)
					if (a.results[k].status <= TH_ACK_REJECTED)
						r->st[a.results[k].status]++;
				th_ack_free(&a);
			} else if (t == TH_MSG_ERROR) {
				th_error_msg e;
				if (th_wire_decode_error(r->rbuf, (size_t)n, &e, &why) != 0)
					continue;
				if (r->errors < 3)
					fprintf(stderr, "th-bench-load: error: %s\n", e.message ? e.message : "?");
				id = e.id;
				r->errors++;
				th_error_msg_free(&e);
			}
			if (id < r->n_msgs && !r->msgs[id].acked) {
				r->msgs[id].acked = 1;
				r->lat[r->n_lat++] = (tr - r->msgs[id].sent) * 1000.0;
				r->ag[i].inflight--;
				r->acked++;
				r->t_last = tr;
			}
		}
	}
}

int main(int argc, char **argv)
{
	const char *defs = NULL, *data = NULL, *ep = "tcp://127.0.0.1:7701", *keyf = NULL,
	           *skeyf = NULL, *unit = "VN";
	long n_agents = 100, batch = 1, inflight = 4, pid = 0;
	double rate = 0, timeout = 300;
	uint64_t rev = 1;
	static const struct option lo[] = {
	    {"defs", 1, 0, 'd'},     {"data", 1, 0, 'D'},  {"endpoint", 1, 0, 'e'},
	    {"agents", 1, 0, 'n'},   {"batch", 1, 0, 'b'}, {"inflight", 1, 0, 'k'},
	    {"rate", 1, 0, 'r'},     {"rev", 1, 0, 'R'},   {"key", 1, 0, 'K'},
	    {"server-key", 1, 0, 'S'}, {"unit", 1, 0, 'u'}, {"pid", 1, 0, 'p'},
	    {"timeout", 1, 0, 't'},  {"limit", 1, 0, 'l'},   {0, 0, 0, 0}};
	long limit = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': defs = optarg; break;
		case 'D': data = optarg; break;
		case 'e': ep = optarg; break;
		case 'n': n_agents = atol(optarg); break;
		case 'b': batch = atol(optarg); break;
		case 'k': inflight = atol(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'R': rev = strtoull(optarg, NULL, 10); break;
		case 'K': keyf = optarg; break;
		case 'S': skeyf = optarg; break;
		case 'u': unit = optarg; break;
		case 'p': pid = atol(optarg); break;
		case 't': timeout = atof(optarg); break;
		case 'l': limit = atol(optarg); break;
		default: fprintf(stderr, "usage: see the header of bench/load.c\n"); return 2;
		}
	}
	if (!defs || !data || n_agents < 1 || batch < 1 || inflight < 1) {
		fprintf(stderr, "th-bench-load: --defs and --data are required\n");
		return 2;
	}
	char pub[41] = "", sec[41] = "", spub[41] = "", ssec[41] = "";
	if (keyf && (read_key(keyf, pub, sec) != 0 || read_key(skeyf, spub, ssec) != 0)) {
		fprintf(stderr, "th-bench-load: cannot read keys %s / %s\n", keyf, skeyf);
		return 2;
	}
	bench_set set;
	if (bench_load(defs, data, rev, &set) != 0)
		return 1;
	if (limit > 0 && (size_t)limit < set.n) {
		/* an even sample of the sorted reports (spread over the hierarchy) */
		size_t keep = (size_t)limit, j = 0;
		for (size_t i = 0; i < set.n; i++) {
			if (j < keep && i == set.n * j / keep)
				set.reports[j++] = set.reports[i];
			else
				th_report_destroy(&set.reports[i]);
		}
		set.n = keep;
	}
	if ((size_t)n_agents > set.n)
		n_agents = (long)set.n;

	/* pre-encode: agent i owns a contiguous slice of the sorted reports */
	size_t max_msgs = set.n;
	msg *msgs = calloc(max_msgs, sizeof *msgs);
	agent *ag = calloc((size_t)n_agents, sizeof *ag);
	zmq_pollitem_t *items = calloc((size_t)n_agents, sizeof *items);
	size_t n_msgs = 0;
	for (long i = 0; i < n_agents; i++) {
		size_t lo_r = set.n * (size_t)i / (size_t)n_agents;
		size_t hi_r = set.n * (size_t)(i + 1) / (size_t)n_agents;
		ag[i].first = ag[i].next = n_msgs;
		for (size_t r = lo_r; r < hi_r; r += (size_t)batch) {
			size_t k = hi_r - r < (size_t)batch ? hi_r - r : (size_t)batch;
			if (th_wire_encode_submit(n_msgs, set.reports + r, k, set.defs,
			                          &msgs[n_msgs].buf, &msgs[n_msgs].len) != 0) {
				fprintf(stderr, "th-bench-load: encode failed\n");
				return 1;
			}
			msgs[n_msgs].n_reports = k;
			n_msgs++;
		}
		ag[i].last = n_msgs;
	}
	size_t bytes = 0;
	for (size_t i = 0; i < n_msgs; i++)
		bytes += msgs[i].len;

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	void *ctx = zmq_ctx_new();
	zmq_ctx_set(ctx, ZMQ_IO_THREADS, 1);
	zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, (int)n_agents + 64);
	for (long i = 0; i < n_agents; i++) {
		void *s = zmq_socket(ctx, ZMQ_DEALER);
		if (!s) {
			fprintf(stderr, "th-bench-load: socket %ld: %s\n", i, zmq_strerror(zmq_errno()));
			return 1;
		}
		th_sockopts so = TH_SOCKOPTS_INIT;
		so.linger_ms = 0;
		so.sndhwm = so.rcvhwm = 100000;
		th_sock_set(s, &so);
		if (keyf)
			th_sock_curve_client(s, spub, pub, sec);
		if (zmq_connect(s, ep) != 0) {
			fprintf(stderr, "th-bench-load: connect %s: %s\n", ep, zmq_strerror(zmq_errno()));
			return 1;
		}
		ag[i].sock = s;
		items[i].socket = s;
		items[i].events = ZMQ_POLLIN;
		th_hello h = {.agent = "th-bench-load", .unit = (char *)unit, .id = (uint64_t)i};
		uint8_t *hb;
		size_t hl;
		if (th_wire_encode_hello(&h, &hb, &hl) != 0 || zmq_send(s, hb, hl, 0) < 0) {
			fprintf(stderr, "th-bench-load: hello failed\n");
			return 1;
		}
		free(hb);
	}
	long hwm_kb = 0, anon_kb = 0;
	double t_hello = bench_now(), last_sample = 0;
	long welcomed = 0;
	uint8_t *rbuf = malloc(64u << 20);
	while (welcomed < n_agents) {
		if (zmq_poll(items, (int)n_agents, 100) < 0)
			break;
		for (long i = 0; i < n_agents; i++) {
			if (!(items[i].revents & ZMQ_POLLIN))
				continue;
			int n = zmq_recv(ag[i].sock, rbuf, 64u << 20, ZMQ_DONTWAIT);
			th_msg_type t;
			const char *why;
			if (n > 0 && th_wire_type(rbuf, (size_t)n, &t, &why) == 0 && t == TH_MSG_WELCOME &&
			    !ag[i].welcomed) {
				ag[i].welcomed = 1;
				welcomed++;
			} else if (n > 0) {
				fprintf(stderr, "th-bench-load: agent %ld: no welcome (type %d)\n", i, (int)t);
				return 1;
			}
		}
		if (bench_now() - t_hello > 60) {
			fprintf(stderr, "th-bench-load: only %ld/%ld welcomes after 60 s\n", welcomed, n_agents);
			return 1;
		}
	}
	double t_welcome = bench_now() - t_hello;

	/* the run: one epoll set over every socket's ZMQ_FD.  zmq_poll over 800
	 * sockets costs ~0.5 ms of CPU a call, and the paced half load calls it
	 * every millisecond: the generator then took a core from the collector.
	 * ZMQ_FD only says "look at ZMQ_EVENTS", so a socket is drained (its
	 * ZMQ_EVENTS read until no POLLIN) when epoll names it and after every
	 * send on it; a sweep of all sockets every 100 ms is the safety net. */
	run r = {.msgs = msgs, .n_msgs = n_msgs, .ag = ag, .rbuf = rbuf};
	r.lat = calloc(n_msgs, sizeof *r.lat);
	int efd = epoll_create1(EPOLL_CLOEXEC);
	if (efd < 0 || !r.lat) {
		fprintf(stderr, "th-bench-load: epoll: %s\n", strerror(errno));
		return 1;
	}
	for (long i = 0; i < n_agents; i++) {
		int fd;
		size_t fl = sizeof fd;
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
		if (zmq_getsockopt(ag[i].sock, ZMQ_FD, &fd, &fl) != 0 ||
		    epoll_ctl(efd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			fprintf(stderr, "th-bench-load: ZMQ_FD of agent %ld: %s\n", i, strerror(errno));
			return 1;
		}
	}
	struct epoll_event evs[256];
	size_t sent = 0;
	double t0 = bench_now(), last_sweep = t0;
	r.t_last = t0;
	double cpu0 = cpu_secs(0), ccpu0 = pid ? cpu_secs(pid) : 0;
	long long cw0 = pid ? bench_write_bytes(pid) : -1;
	long rr = 0;
	while (r.acked < n_msgs) {
		double now = bench_now();
		if (now - t0 > timeout) {
			fprintf(stderr, "th-bench-load: timeout: %zu/%zu acked\n", r.acked, n_msgs);
			break;
		}
		/* send */
		if (rate <= 0) {
			for (long i = 0; i < n_agents; i++) {
				agent *a = &ag[i];
				int any = 0;
				while (a->inflight < inflight && a->next < a->last) {
					msg *m = &msgs[a->next];
					if (zmq_send(a->sock, m->buf, m->len, ZMQ_DONTWAIT) < 0)
						break;
					m->sent = bench_now();
					a->next++;
					a->inflight++;
					sent++;
					any = 1;
				}
				if (any)
					drain(&r, i);
			}
		} else {
			size_t due = (size_t)((now - t0) * rate) + 1;
			long tries = 0;
			while (sent < due && sent < n_msgs && tries < n_agents) {
				long i = rr;
				agent *a = &ag[rr];
				rr = (rr + 1) % n_agents;
				if (a->next >= a->last || a->inflight >= inflight) {
					tries++;
					continue;
				}
				tries = 0;
				msg *m = &msgs[a->next];
				if (zmq_send(a->sock, m->buf, m->len, ZMQ_DONTWAIT) < 0)
					break;
				m->sent = bench_now();
				a->next++;
				a->inflight++;
				sent++;
				drain(&r, i);
			}
		}
		int to = 10;
		if (rate > 0) {
			double nxt = t0 + (double)(sent + 1) / rate - bench_now();
			int ms = (int)(nxt * 1000);
			to = nxt <= 0 ? 0 : ms < 1 ? 1 : ms < 10 ? ms : 10;   /* never a 0 ms spin while waiting */
		}
		int ne = epoll_wait(efd, evs, (int)(sizeof evs / sizeof evs[0]), to);
		for (int e = 0; e < ne; e++)
			drain(&r, (long)evs[e].data.u64);
		if (bench_now() - last_sweep > 0.1) {
			for (long i = 0; i < n_agents; i++)
				drain(&r, i);
			last_sweep = bench_now();
		}
		if (pid && bench_now() - last_sample > 0.02) {
			sample(pid, &hwm_kb, &anon_kb);
			last_sample = bench_now();
		}
	}
	close(efd);
	double *lat = r.lat;
	size_t n_lat = r.n_lat, acked = r.acked, errors = r.errors, *st = r.st;
	double t_last = r.t_last;
	if (pid)
		sample(pid, &hwm_kb, &anon_kb);
	double cpu_load = cpu_secs(0) - cpu0, cpu_coll = pid ? cpu_secs(pid) - ccpu0 : 0;
	long long cw1 = pid ? bench_write_bytes(pid) : -1;
	double secs = t_last - t0;
	qsort(lat, n_lat, sizeof *lat, bench_cmp_double);
	size_t reports = 0, records = 0;
	for (size_t i = 0; i < set.n; i++)
		records += set.reports[i]->n_rows;
	for (size_t i = 0; i < n_msgs; i++)
		reports += msgs[i].acked ? msgs[i].n_reports : 0;
	printf("agents=%ld submits=%zu acked=%zu reports=%zu records=%zu bytes=%zu secs=%.3f "
	       "reports_s=%.0f records_s=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
	       "accepted=%zu duplicate=%zu stale=%zu retry=%zu rejected=%zu errors=%zu "
	       "welcome_s=%.3f coll_hwm_kb=%ld coll_anon_kb=%ld load_cpu_s=%.2f coll_cpu_s=%.2f "
	       "coll_disk_bytes=%lld\n",
	       n_agents, n_msgs, acked, reports, records, bytes, secs,
	       secs > 0 ? (double)reports / secs : 0, secs > 0 ? (double)records / secs : 0,
	       n_lat ? lat[n_lat / 2] : 0, n_lat ? lat[(n_lat * 99) / 100] : 0,
	       n_lat ? lat[n_lat - 1] : 0, st[0], st[1], st[2], st[3], st[4], errors, t_welcome,
	       hwm_kb, anon_kb, cpu_load, cpu_coll, cw0 >= 0 && cw1 >= 0 ? cw1 - cw0 : -1);
	for (long i = 0; i < n_agents; i++)
		zmq_close(ag[i].sock);
	zmq_ctx_term(ctx);
	for (size_t i = 0; i < n_msgs; i++)
		free(msgs[i].buf);
	free(msgs);
	free(ag);
	free(items);
	free(lat);
	free(rbuf);
	bench_free(&set);
	return acked == n_msgs && errors == 0 ? 0 : 1;
}
