/* th_lmdb.c -- LMDB and errno codes to TH_E*. */
#include "th_lmdb.h"
#include "th_error.h"

#include <errno.h>
#include <lmdb.h>

int th_lmdb_error(int rc)
{
	switch (rc) {
	case 0: return TH_OK;
	case MDB_NOTFOUND: return TH_ENOTFOUND;
	case MDB_MAP_FULL: return TH_EMAPFULL;
	case ENOSPC: case EFBIG: case EDQUOT: return TH_ENOSPC;
	case ENOMEM: return TH_ENOMEM;
	default: return rc > 0 ? TH_EIO : TH_ESTORE;
	}
}
