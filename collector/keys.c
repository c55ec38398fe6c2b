/* keys.c -- authorised keys and the ZAP handler (KEYS.md); key files: common/th_keyfile. */
#include "keys.h"
#include "th_log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

struct th_keys {
	th_key *k;
	size_t n;
};

const char *th_role_name(th_role r)
{
	return r == TH_ROLE_ADMIN ? "admin" : r == TH_ROLE_READER ? "reader" : "agent";
}

int th_keys_load(const char *path, th_keys **out, th_diag *diag)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "cannot open: %s",
		                   strerror(errno));
	th_keys *k = calloc(1, sizeof *k);
	size_t cap = 0, errs = 0;
	char line[1024];
	long ln = 0;
	int rc = TH_OK;
	if (!k) {
		fclose(f);
		return TH_ENOMEM;
	}
	while (fgets(line, sizeof line, f)) {
		ln++;
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		size_t n = strlen(p);
		while (n && isspace((unsigned char)p[n - 1]))
			p[--n] = 0;
		if (!*p || *p == '#')
			continue;
		char pub[128] = "", unit[128] = "", role[32] = "";
		int used = 0;
		if (sscanf(p, "%127s %127s %31s %n", pub, unit, role, &used) < 3) {
			th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, path, ln, 0, NULL,
			            "expected \"<public-key> <unit> <agent|reader|admin> [comment]\"");
			errs++;
			continue;
		}
		th_key e = {0};
		if (!th_z85_key_ok(pub)) {
			th_diag_add(diag, TH_SEV_ERROR, TH_EKEY, path, ln, 0, NULL,
			            "\"%.48s\" is not a 40-character Z85 public key", pub);
			errs++;
			continue;
		}
		if (strlen(unit) > 64) {
			th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, path, ln, 0, NULL, "unit code too long");
			errs++;
			continue;
		}
		if (strcmp(role, "agent") == 0)
			e.role = TH_ROLE_AGENT;
		else if (strcmp(role, "reader") == 0)
			e.role = TH_ROLE_READER;
		else if (strcmp(role, "admin") == 0)
			e.role = TH_ROLE_ADMIN;
		else {
			th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, path, ln, 0, NULL,
			            "role \"%s\" is not agent, reader or admin", role);
			errs++;
			continue;
		}
		memcpy(e.pub, pub, TH_Z85_LEN + 1);
		memcpy(e.unit, unit, strlen(unit) + 1);
		snprintf(e.comment, sizeof e.comment, "%s", used > 0 ? p + used : "");
		if (th_keys_find(k, e.pub)) {
			th_diag_add(diag, TH_SEV_ERROR, TH_EDUPKEY, path, ln, 0, NULL,
			            "key listed twice");
			errs++;
			continue;
		}
		if (k->n == cap) {
			cap = cap ? cap * 2 : 64;
			th_key *nk = realloc(k->k, cap * sizeof *nk);
			if (!nk) {
				rc = TH_ENOMEM;
				break;
			}
			k->k = nk;
		}
		k->k[k->n++] = e;
	}
	fclose(f);
	if (rc == TH_OK && errs)
		rc = TH_ESYNTAX;
	if (rc) {
		th_keys_destroy(&k);
		return rc;
	}
	*out = k;
	return TH_OK;
}

void th_keys_destroy(th_keys **pk)
{
	if (!pk || !*pk)
		return;
	free((*pk)->k);
	free(*pk);
	*pk = NULL;
}

size_t th_keys_count(const th_keys *k) { return k ? k->n : 0; }

const th_key *th_keys_find(const th_keys *k, const char *pub)
{
	for (size_t i = 0; k && i < k->n; i++)
		if (strcmp(k->k[i].pub, pub) == 0)
			return &k->k[i];
	return NULL;
}

/* --- ZAP ------------------------------------------------------------------------ */

struct th_zap {
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock;
	th_keys *keys;
	int started;
};

static int recv_frame(void *s, char *buf, size_t cap, size_t *len, int *more)
{
	int n = zmq_recv(s, buf, cap, 0);
	if (n < 0)
		return -1;
	*len = (size_t)n > cap ? cap : (size_t)n;
	int m = 0;
	size_t ml = sizeof m;
	zmq_getsockopt(s, ZMQ_RCVMORE, &m, &ml);
	*more = m;
	return 0;
}

static void *zap_main(void *arg)
{
	th_zap *z = arg;
	pthread_setname_np(pthread_self(), "th-zap");
	void *s = zmq_socket(z->ctx, ZMQ_REP);
	int linger = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
	if (zmq_bind(s, "inproc://zeromq.zap.01") != 0) {
		th_log(TH_LOG_ERROR, "zap", "cannot bind the ZAP handler: %s", zmq_strerror(zmq_errno()));
		zmq_close(s);
		return NULL;
	}
	for (;;) {
		char f[8][256];
		size_t len[8];
		int n = 0, more = 1;
		while (more) {
			char tmp[256];
			size_t l;
			if (recv_frame(s, tmp, sizeof tmp, &l, &more) != 0)
				goto out;
			if (n < 8) {
				memcpy(f[n], tmp, l);
				len[n] = l;
			}
			n++;
		}
		/* version, request id, domain, address, identity, mechanism, credentials */
		const char *status = "400", *text = "unknown key";
		char user[TH_Z85_LEN + 1] = "";
		if (n >= 7 && len[0] == 3 && memcmp(f[0], "1.0", 3) == 0 && len[5] == 5 &&
		    memcmp(f[5], "CURVE", 5) == 0 && len[6] == 32) {
			zmq_z85_encode(user, (uint8_t *)f[6], 32);
			pthread_mutex_lock(&z->lock);
			const th_key *k = th_keys_find(z->keys, user);
			pthread_mutex_unlock(&z->lock);
			if (k) {
				status = "200";
				text = "OK";
			} else {
				char addr[64];
				snprintf(addr, sizeof addr, "%.*s", (int)(len[3] < 63 ? len[3] : 63), f[3]);
				th_log(TH_LOG_WARN, "zap", "refused unknown key %s from %s", user, addr);
				user[0] = 0;
			}
		} else {
			text = "only CURVE is accepted";
		}
		zmq_send(s, "1.0", 3, ZMQ_SNDMORE);
		zmq_send(s, n >= 2 ? f[1] : "", n >= 2 ? len[1] : 0, ZMQ_SNDMORE);
		zmq_send(s, status, 3, ZMQ_SNDMORE);
		zmq_send(s, text, strlen(text), ZMQ_SNDMORE);
		zmq_send(s, user, strlen(user), ZMQ_SNDMORE);
		zmq_send(s, "", 0, 0);
	}
out:
	zmq_close(s);
	return NULL;
}

int th_zap_start(void *ctx, th_keys *keys, th_zap **out)
{
	th_zap *z = calloc(1, sizeof *z);
	if (!z)
		return TH_ENOMEM;
	z->ctx = ctx;
	z->keys = keys;
	pthread_mutex_init(&z->lock, NULL);
	if (pthread_create(&z->thread, NULL, zap_main, z) != 0) {
		pthread_mutex_destroy(&z->lock);
		free(z);
		return TH_ENOMEM;
	}
	z->started = 1;
	/* give the handler a moment to bind before sockets start handshakes */
	usleep(20000);
	*out = z;
	return TH_OK;
}

void th_zap_set_keys(th_zap *z, th_keys *keys)
{
	pthread_mutex_lock(&z->lock);
	th_keys *old = z->keys;
	z->keys = keys;
	pthread_mutex_unlock(&z->lock);
	th_keys_destroy(&old);
}

int th_zap_lookup(th_zap *z, const char *pub, th_key *out)
{
	pthread_mutex_lock(&z->lock);
	const th_key *k = th_keys_find(z->keys, pub);
	if (k)
		*out = *k;
	pthread_mutex_unlock(&z->lock);
	return k ? TH_OK : TH_ENOTFOUND;
}

void th_zap_join(th_zap **pz)
{
	if (!pz || !*pz)
		return;
	th_zap *z = *pz;
	if (z->started)
		pthread_join(z->thread, NULL);
	pthread_mutex_destroy(&z->lock);
	th_keys_destroy(&z->keys);
	free(z);
	*pz = NULL;
}
