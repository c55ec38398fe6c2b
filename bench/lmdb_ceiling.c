/* lmdb_ceiling.c -- the best case the disk and LMDB allow for the same data:
 * the store's record bytes (216-byte header + canonical form) of every report,
 * put under its report key in key order, 1000 puts per durable transaction.
 * No ZeroMQ, no validation, no rollups, no history.
 * usage: th-bench-lmdb DEFS DATA_DIR SCRATCH_DIR   (prints key=value) */
#include "common.h"
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: th-bench-lmdb DEFS DATA_DIR SCRATCH_DIR\n");
		return 2;
	}
	bench_set set;
	if (bench_load(argv[1], argv[2], 1, &set) != 0)
		return 1;
	uint8_t **val = calloc(set.n, sizeof *val);
	size_t *vl = calloc(set.n, sizeof *vl);
	char (*key)[200] = calloc(set.n, sizeof *key);
	int *kl = calloc(set.n, sizeof *kl);
	size_t bytes = 0;
	for (size_t i = 0; i < set.n; i++) {
		th_report *r = set.reports[i];
		if (bench_record(&set, r, &val[i], &vl[i]) != 0 ||
		    (kl[i] = th_report_key(r->unit, r->appendix, r->period, key[i], 200)) < 0) {
			fprintf(stderr, "th-bench-lmdb: cannot encode %s\n", r->unit);
			return 1;
		}
		bytes += vl[i] + (size_t)kl[i];
	}
	mkdir(argv[3], 0700);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc = mdb_env_create(&env);
	if (!rc)
		rc = mdb_env_set_mapsize(env, (size_t)4 << 30);
	if (!rc)
		rc = mdb_env_set_maxdbs(env, 4);
	if (!rc)
		rc = mdb_env_open(env, argv[3], 0, 0600);
	if (rc) {
		fprintf(stderr, "th-bench-lmdb: %s\n", mdb_strerror(rc));
		return 1;
	}
	double t0 = bench_now();
	long long w0 = bench_write_bytes(0);
	size_t txns = 0;
	for (size_t i = 0; i < set.n && !rc;) {
		rc = mdb_txn_begin(env, NULL, 0, &txn);
		if (!rc)
			rc = mdb_dbi_open(txn, "reports", MDB_CREATE, &dbi);
		size_t end = i + 1000 < set.n ? i + 1000 : set.n;
		for (; i < end && !rc; i++) {
			MDB_val k = {(size_t)kl[i], key[i]}, v = {vl[i], val[i]};
			rc = mdb_put(txn, dbi, &k, &v, 0);
		}
		if (!rc)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		txns++;
	}
	double secs = bench_now() - t0;
	long long w1 = bench_write_bytes(0);
	if (rc) {
		fprintf(stderr, "th-bench-lmdb: %s\n", mdb_strerror(rc));
		return 1;
	}
	printf("lmdb_reports=%zu lmdb_records=%zu lmdb_bytes=%zu lmdb_txns=%zu lmdb_secs=%.4f "
	       "lmdb_reports_s=%.0f lmdb_records_s=%.0f lmdb_disk_bytes=%lld\n",
	       set.n, set.records, bytes, txns, secs, (double)set.n / secs,
	       (double)set.records / secs, w0 >= 0 && w1 >= 0 ? w1 - w0 : -1);
	mdb_env_close(env);
	for (size_t i = 0; i < set.n; i++)
		free(val[i]);
	free(val);
	free(vl);
	free(key);
	free(kl);
	bench_free(&set);
	return 0;
}
