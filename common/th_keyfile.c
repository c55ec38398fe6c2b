/* th_keyfile.c -- reading and writing CURVE key files (th_keyfile.h). */
#include "th_keyfile.h"
#include "th_sock.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zmq.h>

int th_z85_key_ok(const char *s)
{
	static const char alphabet[] =
		"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
	if (!s || strlen(s) != TH_Z85_LEN)
		return 0;
	for (const char *p = s; *p; p++)
		if (!strchr(alphabet, *p))
			return 0;
	uint8_t raw[32];
	return zmq_z85_decode(raw, s) != NULL;
}

/* The key on one line (modified in place): its last blank-separated token,
 * without a leading '=' or surrounding quotes when it is longer than a key ('=' and
 * '"' are Z85 characters).  *slot: 0 public, 1 secret, -1 unlabelled. */
static char *line_key(char *p, int *slot)
{
	size_t n = strlen(p);
	while (n && isspace((unsigned char)p[n - 1]))
		p[--n] = 0;
	*slot = !strncasecmp(p, "public", 6) ? 0 : !strncasecmp(p, "secret", 6) ? 1 : -1;
	char *tok = p + n;
	while (tok > p && !isspace((unsigned char)tok[-1]))
		tok--;
	size_t tl = strlen(tok);
	if (tl > TH_Z85_LEN && (*tok == '"' || *tok == '=')) {
		tok++;
		tl--;
	}
	if (tl > TH_Z85_LEN && tok[tl - 1] == '"')
		tok[--tl] = 0;
	return tok;
}

int th_keyfile_read(const char *path, char pub[TH_Z85_LEN + 1], char *sec, const char **why)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		*why = errno == ENOENT ? "the key file does not exist" : "cannot open the key file";
		return TH_EIO;
	}
	char keys[2][TH_Z85_LEN + 1];
	int have[2] = {0, 0};
	char line[512];
	int rc = TH_OK;
	while (fgets(line, sizeof line, f)) {
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			continue;
		int slot;
		char *k = line_key(p, &slot);
		if (!th_z85_key_ok(k)) {
			*why = "a line of the key file is not a 40-character Z85 key";
			rc = TH_EKEY;
			break;
		}
		if (slot < 0)
			slot = have[0] ? 1 : 0;
		if (!have[slot]) {
			memcpy(keys[slot], k, TH_Z85_LEN + 1);
			have[slot] = 1;
		}
	}
	fclose(f);
	if (rc)
		return rc;
	if (!have[0] || (sec && !have[1])) {
		*why = sec ? "the key file needs a public key and a secret key (\"public KEY\" and "
		             "\"secret KEY\" lines, as `keygen` writes them)"
		           : "the key file holds no public key (a \"public KEY\" line)";
		return TH_EKEY;
	}
	memcpy(pub, keys[0], TH_Z85_LEN + 1);
	if (sec)
		memcpy(sec, keys[1], TH_Z85_LEN + 1);
	return TH_OK;
}

/* Writes text to path with mode: the secret file is created exclusively (never
 * overwritten), the public one replaced. */
static int write_file(const char *path, int secret, const char *text, const char **why)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (secret ? O_EXCL : O_TRUNC),
	              secret ? 0600 : 0644);
	if (fd < 0) {
		if (secret)
			*why = errno == EEXIST ? "the .key file exists already (refusing to overwrite)"
			                       : "cannot create the .key file";
		else
			*why = "cannot create the .pub file";
		return TH_EIO;
	}
	size_t n = strlen(text);
	int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
	if (close(fd) != 0)
		ok = 0;
	if (!ok) {
		*why = secret ? "cannot write the .key file" : "cannot write the .pub file";
		unlink(path);
		return TH_EIO;
	}
	return TH_OK;
}

int th_keyfile_generate(const char *prefix, char pub_out[TH_Z85_LEN + 1], const char **why)
{
	char pub[TH_Z85_LEN + 1], sec[TH_Z85_LEN + 1];
	if (zmq_curve_keypair(pub, sec) != 0) {
		*why = "this libzmq has no CURVE support";
		return TH_EKEY;
	}
	char path[4096], text[256];
	if ((size_t)snprintf(path, sizeof path, "%s.key", prefix) >= sizeof path) {
		*why = "the key prefix is too long";
		return TH_EINVAL;
	}
	snprintf(text, sizeof text,
	         "# tonghop CURVE keypair: keep this file secret (mode 0600)\npublic %s\nsecret %s\n", pub,
	         sec);
	int rc = write_file(path, 1, text, why);
	explicit_bzero(sec, sizeof sec);
	explicit_bzero(text, sizeof text);
	if (rc)
		return rc;
	snprintf(path, sizeof path, "%s.pub", prefix);
	snprintf(text, sizeof text, "# tonghop CURVE public key\npublic %s\n", pub);
	if ((rc = write_file(path, 0, text, why)) != 0)
		return rc;
	memcpy(pub_out, pub, sizeof pub);
	return TH_OK;
}

int th_keyfile_curve_client(void *sock, const char *server_key_file, const char *key_file, char *why,
                            size_t cap)
{
	char pub[TH_Z85_LEN + 1], sec[TH_Z85_LEN + 1], spub[TH_Z85_LEN + 1];
	const char *w = NULL;
	int rc = th_keyfile_read(key_file, pub, sec, &w);
	if (rc) {
		snprintf(why, cap, "%s: %s", key_file, w);
		return rc;
	}
	if ((rc = th_keyfile_read(server_key_file, spub, NULL, &w)) != 0) {
		explicit_bzero(sec, sizeof sec);
		snprintf(why, cap, "%s: %s", server_key_file, w);
		return rc;
	}
	rc = th_sock_curve_client(sock, spub, pub, sec);
	explicit_bzero(sec, sizeof sec);
	if (rc)
		snprintf(why, cap, "CURVE: %s", zmq_strerror(zmq_errno()));
	return rc;
}
