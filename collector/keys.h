/* keys.h -- authorised keys (collector/KEYS.md) and the ZAP
 * handler that admits CURVE clients whose public key is authorised. */
#ifndef TH_KEYS_H
#define TH_KEYS_H

#include <stddef.h>
#include "th_error.h"
#include "th_keyfile.h"

typedef enum { TH_ROLE_AGENT = 0, TH_ROLE_READER, TH_ROLE_ADMIN } th_role;

typedef struct th_key {
	char pub[TH_Z85_LEN + 1];     /* Z85 public key */
	char unit[65];
	th_role role;
	char comment[128];
} th_key;

typedef struct th_keys th_keys;

/* Parses an authorised-keys file; every problem to diag as file:line. */
int th_keys_load(const char *path, th_keys **out, th_diag *diag);
void th_keys_destroy(th_keys **k);
size_t th_keys_count(const th_keys *k);
/* The entry for a Z85 public key, or NULL. */
const th_key *th_keys_find(const th_keys *k, const char *pub);
const char *th_role_name(th_role r);

/* The ZAP handler: a thread answering on inproc://zeromq.zap.01 of ctx.
 * th_zap_set_keys swaps the key table (the handler takes ownership; the old
 * table is destroyed).  The user id of an admitted connection is its Z85
 * public key.  Stops when the context is terminated. */
typedef struct th_zap th_zap;
int th_zap_start(void *ctx, th_keys *keys, th_zap **out);
void th_zap_set_keys(th_zap *z, th_keys *keys);
/* Looks up a key under the handler's lock; copies the entry; 0 or TH_ENOTFOUND. */
int th_zap_lookup(th_zap *z, const char *pub, th_key *out);
void th_zap_join(th_zap **z);

#endif
