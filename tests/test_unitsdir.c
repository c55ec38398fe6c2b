/* test_unitsdir.c -- the collector's --units-dir (collector/unitsdir.c): which files
 * it loads, which version ids may name a file, and a durable write that never
 * replaces a file and leaves nothing behind when it fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "unitsdir.h"

static void put(const char *dir, const char *name, const char *text)
{
	char p[4200];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	assert_int_equal(tu_write_file(p, text, strlen(text)), 0);
}

static size_t entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void lists_units_files_by_name(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	put(dir, "vn-2025.units", "x");
	put(dir, "hanoi-2021.units", "x");
	put(dir, ".hidden.units", "x");       /* a temporary of a write */
	put(dir, "notes.txt", "x");
	put(dir, ".units", "x");
	put(dir, "b.units.bak", "x");
	char **paths = NULL;
	size_t n = 0;
	assert_int_equal(th_unitsdir_list(dir, &paths, &n), 0);
	assert_int_equal(n, 2);
	char want[4200];
	snprintf(want, sizeof want, "%s/hanoi-2021.units", dir);
	assert_string_equal(paths[0], want);
	snprintf(want, sizeof want, "%s/vn-2025.units", dir);
	assert_string_equal(paths[1], want);
	th_unitsdir_free(paths, n);
	char gone[4200];
	snprintf(gone, sizeof gone, "%s/none", dir);
	errno = 0;
	assert_int_equal(th_unitsdir_list(gone, &paths, &n), TH_EIO);
	assert_int_equal(errno, ENOENT);
	tu_rmrf(dir);
}

static void version_ids_that_name_a_file(void **state)
{
	(void)state;
	const char *ok[] = {"hanoi-2021", "vn_2025.1", "A", "x.y-z_9"};
	const char *bad[] = {"", ".hidden", "a/b", "../x", "a b", "tỉnh", "a\\b", "a:b", NULL,
	                     "12345678901234567890123456789012345678901234567890123456789012345"};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
		assert_true(th_unitsdir_name_ok(ok[i]));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_false(th_unitsdir_name_ok(bad[i]));
}

static void written_once_durably(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	const char text[] = "@version v9\n@effective 2030-01-01\ncode\tparent\tkind\tname\nR\t\tcity\tR\n";
	char path[4200], why[512] = "";
	assert_int_equal(th_unitsdir_write(dir, "v9", text, sizeof text - 1, path, sizeof path, why,
	                                   sizeof why), 0);
	char want[4200];
	snprintf(want, sizeof want, "%s/v9.units", dir);
	assert_string_equal(path, want);
	size_t len = 0;
	char *back = tu_read_file(path, &len);
	assert_int_equal(len, sizeof text - 1);
	assert_memory_equal(back, text, len);
	free(back);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(entries(dir), 1);   /* no temporary left */
	/* never replaced */
	assert_int_equal(th_unitsdir_write(dir, "v9", "other", 5, path, sizeof path, why, sizeof why),
	                 TH_EEXIST);
	assert_non_null(strstr(why, "exists already"));
	back = tu_read_file(want, &len);
	assert_memory_equal(back, text, len);
	free(back);
	/* an id that cannot name a file; a directory that is not there: nothing left */
	assert_int_equal(th_unitsdir_write(dir, "../v", "x", 1, path, sizeof path, why, sizeof why),
	                 TH_EINVAL);
	char gone[4200];
	snprintf(gone, sizeof gone, "%s/none", dir);
	assert_int_equal(th_unitsdir_write(gone, "v1", "x", 1, path, sizeof path, why, sizeof why),
	                 TH_EIO);
	assert_non_null(strstr(why, gone));
	assert_int_equal(entries(dir), 1);
	/* remove undoes the write */
	assert_int_equal(th_unitsdir_remove(dir, want), 0);
	assert_int_equal(entries(dir), 0);
	assert_int_equal(th_unitsdir_remove(dir, want), 0);   /* gone already: fine */
	tu_rmrf(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lists_units_files_by_name),
		cmocka_unit_test(version_ids_that_name_a_file),
		cmocka_unit_test(written_once_durably),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}
