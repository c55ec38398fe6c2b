/* th_lmdb.h -- the one translation of LMDB (and errno) codes into the project's
 * error space, for every module that keeps data in LMDB (the store, the outbox). */
#ifndef TH_LMDB_H
#define TH_LMDB_H

/* 0 -> TH_OK; MDB_NOTFOUND -> TH_ENOTFOUND; MDB_MAP_FULL -> TH_EMAPFULL;
 * ENOSPC, EFBIG, EDQUOT -> TH_ENOSPC; ENOMEM -> TH_ENOMEM; any other errno
 * (rc > 0: EACCES, EROFS, EIO, ENOENT...) -> TH_EIO; any other LMDB code
 * (corruption, version mismatch, panic, full reader table...) -> TH_ESTORE. */
int th_lmdb_error(int rc);

#endif
