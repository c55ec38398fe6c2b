/* th_keyfile.h -- CURVE key files: the one reader and the one generator
 * (layout in collector/KEYS.md).
 *
 * A key file is text: '#' comment lines, then up to two lines each holding a
 * 40-character Z85 key, optionally labelled: `public KEY`, `secret KEY`
 * (`public = KEY` and a quoted "KEY" are accepted too).  An unlabelled key is
 * the public key when it comes first and the secret key when it comes second.
 * A keypair file (PREFIX.key) holds both; a public-key file (PREFIX.pub) only
 * the public one. */
#ifndef TH_KEYFILE_H
#define TH_KEYFILE_H

#include "th_error.h"

#define TH_Z85_LEN 40

/* 1 when s is a 40-character Z85 string that decodes to a 32-byte key. */
int th_z85_key_ok(const char *s);

/* Reads the public key (and the secret key when sec is not NULL) from path.
 * Returns 0; TH_EIO when the file cannot be opened; TH_EKEY when a line is not
 * a key or a needed key is missing.  *why: a static English sentence.  The
 * outputs are written only on success. */
int th_keyfile_read(const char *path, char pub[TH_Z85_LEN + 1], char *sec, const char **why);

/* Makes a new keypair and writes PREFIX.key (mode 0600, created exclusively:
 * an existing file is never overwritten; `public` and `secret` lines) and
 * PREFIX.pub (mode 0644, the `public` line; replaced when present).  pub_out gets
 * the public key.
 * TH_EIO / TH_EKEY with *why. */
int th_keyfile_generate(const char *prefix, char pub_out[TH_Z85_LEN + 1], const char **why);

/* Makes sock a CURVE client: the keypair from key_file, the server's public key
 * from server_key_file.  0, or TH_EIO / TH_EKEY / TH_ENET with a sentence naming
 * the file in why (cap bytes). */
int th_keyfile_curve_client(void *sock, const char *server_key_file, const char *key_file, char *why,
                            size_t cap);

#endif
