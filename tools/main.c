/* main.c -- tonghop, the command line for inspectors and leaders: rollup
 * tables per level, completeness, a unit's reports and their history, the
 * hierarchy, offline validation of appendix files, a store integrity check.
 * This file parses the command line and dispatches; each command group has
 * its own file (cmd_*.c) and reads through the view library (th_view.h).
 *
 * Data source: --db DIR opens the collector's LMDB store read-only (LMDB
 * allows readers in other processes while the collector writes), or
 * --collector EP asks its query socket.
 * Exit codes: 0 ok, 1 a problem was found or a runtime failure, 2 usage. */
#include "tonghop.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_main =
	"usage: tonghop COMMAND [options]\n"
	"\n"
	"Read the figures the collector gathered: rollups per level, who has not reported,\n"
	"a unit's reports and their history; check appendix files offline.\n"
	"\n"
	"commands:\n"
	"  rollup    one row per unit of a level (or children of a unit) with subtree totals\n"
	"  status    completeness per unit: expected, reported, on time, late, missing\n"
	"  report    a unit's current report, and with --history every revision and its changes\n"
	"  units     the hierarchy: a list, a tree with contacts, its versions; submit a new one\n"
	"  validate  check appendix files exactly as the agent and the collector do\n"
	"  check     verify a store: rollups equal a recomputation, every report valid\n"
	"  rebuild   recompute every rollup of a store from the latest revisions (writes)\n"
	"  watch     follow the collector's rollup stream live\n"
	"\n"
	"`tonghop COMMAND --help` describes each command.  Exit codes: 0 ok, 1 problem found\n"
	"or failure, 2 usage error.\n";

static const char *usage_common =
	"  --db DIR            the collector's store, opened read-only\n"
	"  --collector EP      rollup, status, units --versions: ask the collector's query\n"
	"                      socket instead (with --key FILE --server-key FILE, or --insecure)\n"
	"  --defs DIR          appendix definitions (default: $TONGHOP_DEFS, the installed\n"
	"                      share/tonghop/appendices, or the source tree's)\n";
static const char *usage_format =
	"  --format FMT        table (default), csv, json or xlsx (xlsx needs -o)\n"
	"  -o, --output FILE   write to FILE instead of standard output\n"
	"  --excel             csv: start with a UTF-8 BOM so Excel reads Vietnamese\n"
	"  --sheet NAME        xlsx: the sheet's name (default tonghop)\n";

static void usage_cmd(const char *cmd, FILE *f)
{
	if (!strcmp(cmd, "rollup"))
		fprintf(f, "usage: tonghop rollup --db DIR --appendix ID --period P [--level N | --parent CODE]\n"
		           "                      [--own] [--columns a,b,c] [--format FMT] [-o FILE]\n\n"
		           "One row per unit at depth N (default 2; 1 = the root) or per child of CODE,\n"
		           "then the total row (the root's or CODE's subtree total).  Sums are subtree\n"
		           "totals unless --own.  Ratios are ratios of sums, in percent; — when the\n"
		           "denominator is 0.  Empty cells: nobody reported that figure (not 0).\n"
		           "--columns takes column ids, ratio ids and enum values as col:code; a count_by\n"
		           "column gives one column per value.\n\n%s%s"
		           "  -a, --appendix ID   PL1, PL2, PL3 ...\n  -p, --period P      2021, 2021-Q2 ...\n"
		           "  -l, --level N       depth of the rows (1 = the root; default 2)\n",
		        usage_common, usage_format);
	else if (!strcmp(cmd, "status"))
		fprintf(f, "usage: tonghop status --db DIR --appendix ID --period P [--level N | --unit CODE]\n"
		           "                      [--format table|csv|json]\n\n"
		           "Completeness per unit at depth N (default 2) or per child of CODE: expected,\n"
		           "reported, on time, late, missing, corrections; then every unit of the subtree\n"
		           "that has not reported, with its parent and contact person.\n\n%s%s"
		           "  -a, --appendix ID, -p, --period P, -l, --level N, --unit CODE\n",
		        usage_common, usage_format);
	else if (!strcmp(cmd, "report"))
		fprintf(f, "usage: tonghop report --db DIR UNIT APPENDIX PERIOD [--history] [--format FMT]\n\n"
		           "The unit's current report (column titles and values); --history lists every\n"
		           "revision (rev, commit time in local time, sender) and what changed from the\n"
		           "previous one, cell by cell.\n\n%s%s",
		        usage_common, usage_format);
	else if (!strcmp(cmd, "units"))
		fprintf(f, "usage: tonghop units (--units FILE | --db DIR) [--tree CODE] [--period P] [--format FMT]\n"
		           "       tonghop units (--db DIR | --collector EP) --versions [--format FMT]\n"
		           "       tonghop units --collector EP --key FILE --server-key FILE --submit FILE\n\n"
		           "Lists the units of a hierarchy file or of a store (the version --period uses,\n"
		           "else the newest); --tree draws CODE's subtree with contact details.\n"
		           "--versions lists every hierarchy version of the store or the collector: id,\n"
		           "effective date, units, levels, root, when and from where it was loaded, and the\n"
		           "periods bound to it (their rollups use that version only).\n"
		           "--submit FILE checks FILE here as the collector does, then sends it as a new\n"
		           "version (admin key only); the collector writes it to its --units-dir and loads\n"
		           "it.  Periods already bound to a version keep it.\n\n%s%s"
		           "  --units FILE        a hierarchy file (with --versions: its version line)\n"
		           "  --tree CODE         CODE's subtree as a tree with contact details\n"
		           "  --versions          every hierarchy version and the periods bound to it\n"
		           "  --submit FILE       send FILE to the collector as a new hierarchy version\n"
		           "  --key FILE          this tool's keypair (tonghop-collector keygen)\n"
		           "  --server-key FILE   the collector's public key (.pub)\n"
		           "  --insecure          no CURVE (a collector started with --insecure)\n",
		        usage_common, usage_format);
	else if (!strcmp(cmd, "validate"))
		fprintf(f, "usage: tonghop validate [--defs DIR] [--unit CODE] [--period P] [--appendix ID] FILE...\n\n"
		           "Reads each appendix file and validates it as the agent and the collector do;\n"
		           "prints every problem as file:line: column: problem.  Exit 0 when every file\n"
		           "is valid, 1 otherwise.\n\n%s",
		        usage_common);
	else if (!strcmp(cmd, "watch"))
		fprintf(f, "usage: tonghop watch --pub ENDPOINT (--key FILE --server-key FILE | --insecure)\n"
		           "                     [--level N] [--unit CODE] [--count N]\n\n"
		           "Follows the collector's rollup stream: one line per changed node (level, unit,\n"
		           "appendix, period, version, commit, completeness).  --level N follows a level,\n"
		           "--unit CODE one unit (with --level, the unit at that level).  A jump in a\n"
		           "node's version is flagged as a gap.  --count N stops after N messages.\n"
		           "  --key FILE          this tool's keypair (tonghop-collector keygen), role reader\n"
		           "  --server-key FILE   the collector's public key (.pub)\n");
	else if (!strcmp(cmd, "rebuild"))
		fprintf(f, "usage: tonghop rebuild --db DIR [--defs DIR]\n\n"
		           "Recomputes every rollup node from the latest revision of every report, in one\n"
		           "transaction, then verifies the store.  Safe while the collector runs (LMDB\n"
		           "serialises writers); use it after changing the appendix version in force.\n");
	else if (!strcmp(cmd, "check"))
		fprintf(f, "usage: tonghop check --db DIR [--defs DIR]\n\n"
		           "Recomputes every rollup from the latest revisions and compares it with the\n"
		           "stored one, and validates every stored report.  Exit 1 on a problem.\n\n%s",
		        usage_common);
}

enum { O_DB = 256, O_DEFS, O_UNITS, O_PARENT, O_OWN, O_COLUMNS,
       O_FORMAT, O_HISTORY, O_TREE, O_VERSIONS, O_UNIT, O_EXCEL, O_SHEET, O_PUB, O_KEY,
       O_SERVER_KEY, O_INSECURE, O_COUNT, O_COLLECTOR, O_SUBMIT };

static const struct option long_opts[] = {
	{"db", 1, 0, O_DB}, {"defs", 1, 0, O_DEFS}, {"units", 1, 0, O_UNITS},
	{"appendix", 1, 0, 'a'}, {"period", 1, 0, 'p'}, {"level", 1, 0, 'l'},
	{"parent", 1, 0, O_PARENT}, {"own", 0, 0, O_OWN}, {"columns", 1, 0, O_COLUMNS},
	{"format", 1, 0, O_FORMAT}, {"output", 1, 0, 'o'}, {"history", 0, 0, O_HISTORY},
	{"tree", 1, 0, O_TREE}, {"versions", 0, 0, O_VERSIONS}, {"unit", 1, 0, O_UNIT},
	{"excel", 0, 0, O_EXCEL}, {"sheet", 1, 0, O_SHEET}, {"help", 0, 0, 'h'},
	{"pub", 1, 0, O_PUB}, {"key", 1, 0, O_KEY}, {"server-key", 1, 0, O_SERVER_KEY},
	{"insecure", 0, 0, O_INSECURE}, {"count", 1, 0, O_COUNT}, {"collector", 1, 0, O_COLLECTOR},
	{"submit", 1, 0, O_SUBMIT},
	{0, 0, 0, 0}};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("tonghop %s\n", TH_VERSION);
		return 0;
	}
	static const char *cmds[] = {"rollup", "status", "report", "units", "validate", "check",
	                             "rebuild", "watch"};
	int known = 0;
	for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
		known |= !strcmp(cmd, cmds[i]);
	if (!known) {
		fprintf(stderr, "%s: unknown command `%s'\n\n%s", th_prog, cmd, usage_main);
		return EXIT_USAGE;
	}
	th_opts o = {.cmd = cmd, .level = 2, .fmt = TH_FMT_TABLE};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc - 1, argv + 1, "ho:a:p:l:", long_opts, NULL)) != -1) {
		char *end;
		switch (ch) {
		case O_DB: o.db = optarg; break;
		case O_DEFS: o.defs_dir = optarg; break;
		case O_UNITS: o.units_file = optarg; break;
		case 'a': o.appendix = optarg; break;
		case 'p': o.period = optarg; break;
		case 'l':
			o.level = strtol(optarg, &end, 10);
			if (*end || o.level < 1 || o.level > 1000)
				th_cli_usage(cmd, "--level takes a positive number (1 = the root)");
			o.level_set = 1;
			break;
		case O_PARENT: o.parent = optarg; break;
		case O_OWN: o.own = 1; break;
		case O_COLUMNS: o.columns = optarg; break;
		case O_FORMAT: {
			int f = th_format_parse(optarg);
			if (f < 0)
				th_cli_usage(cmd, "--format takes table, csv, json or xlsx");
			o.fmt = (th_format)f;
			break;
		}
		case 'o': o.out_path = optarg; break;
		case O_HISTORY: o.history = 1; break;
		case O_TREE: o.tree = optarg; break;
		case O_VERSIONS: o.versions = 1; break;
		case O_UNIT: o.unit = optarg; break;
		case O_EXCEL: o.excel = 1; break;
		case O_SHEET: o.sheet = optarg; break;
		case O_PUB: o.pub = optarg; break;
		case O_KEY: o.key = optarg; break;
		case O_SERVER_KEY: o.server_key = optarg; break;
		case O_INSECURE: o.insecure = 1; break;
		case O_COLLECTOR: o.collector = optarg; break;
		case O_SUBMIT: o.submit = optarg; break;
		case O_COUNT:
			o.count = strtol(optarg, &end, 10);
			if (*end || o.count < 0)
				th_cli_usage(cmd, "--count takes a number");
			break;
		case 'h': usage_cmd(cmd, stdout); return 0;
		default:
			fprintf(stderr, "(try `%s %s --help')\n", th_prog, cmd);
			return EXIT_USAGE;
		}
	}
	char **rest = argv + 1 + optind;
	int nrest = argc - 1 - optind;
	if (o.fmt == TH_FMT_XLSX && !o.out_path)
		th_cli_usage(cmd, "--format xlsx needs -o FILE");
	if (o.appendix && strlen(o.appendix) > TH_CODE_MAX)
		th_cli_usage(cmd, "--appendix is too long");
	if (o.period && !th_period_valid(o.period))
		th_cli_usage(cmd, "--period takes yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm");

	if (!strcmp(cmd, "validate")) {
		if (nrest < 1)
			th_cli_usage(cmd, "give at least one FILE");
		return th_cmd_validate(&o, rest, nrest);
	}
	if (!strcmp(cmd, "watch")) {
		if (nrest)
			th_cli_usage(cmd, "unexpected argument");
		if (!o.pub)
			th_cli_usage(cmd, "--pub ENDPOINT is required");
		return th_cmd_watch(&o);
	}
	if (!strcmp(cmd, "units")) {
		if (nrest)
			th_cli_usage(cmd, "unexpected argument");
		if (o.submit && !o.collector)
			th_cli_usage(cmd, "--submit FILE sends FILE to the collector: give --collector ENDPOINT "
			               "(with --key FILE --server-key FILE of an admin key)");
		if (o.submit && (o.db || o.units_file || o.versions || o.tree))
			th_cli_usage(cmd, "--submit FILE goes with --collector only");
		if (o.collector && o.db)
			th_cli_usage(cmd, "give --db DIR or --collector ENDPOINT, not both");
		if (o.collector && !o.submit && !o.versions)
			th_cli_usage(cmd, "--collector works with --versions and --submit; use --db DIR to list units");
		if (!o.units_file && !o.db && !o.collector)
			th_cli_usage(cmd, "give --units FILE, --db DIR or --collector ENDPOINT");
		if (o.units_file && (o.db || o.collector))
			th_cli_usage(cmd, "give --units FILE or a store, not both");
		return th_cmd_units(&o);
	}
	int remote_ok = !strcmp(cmd, "rollup") || !strcmp(cmd, "status");
	if (o.collector && !remote_ok)
		th_cli_usage(cmd, "--collector works with rollup and status; use --db DIR");
	if (o.collector && o.db)
		th_cli_usage(cmd, "give --db DIR or --collector ENDPOINT, not both");
	if (!o.db && !o.collector)
		th_cli_usage(cmd, remote_ok ? "--db DIR (or --collector ENDPOINT) is required"
		                         : "--db DIR is required");
	if (!strcmp(cmd, "check")) {
		if (nrest)
			th_cli_usage(cmd, "unexpected argument");
		return th_cmd_check(&o);
	}
	if (!strcmp(cmd, "rebuild")) {
		if (nrest)
			th_cli_usage(cmd, "unexpected argument");
		return th_cmd_rebuild(&o);
	}
	if (!strcmp(cmd, "report")) {
		if (nrest != 3)
			th_cli_usage(cmd, "give UNIT APPENDIX PERIOD");
		if (!th_period_valid(rest[2]))
			th_cli_usage(cmd, "PERIOD takes yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm");
		if (o.fmt == TH_FMT_XLSX && o.history)
			th_cli_usage(cmd, "--history prints text; use --format table");
		return th_cmd_report(&o, rest[0], rest[1], rest[2]);
	}
	if (nrest)
		th_cli_usage(cmd, "unexpected argument");
	if (!o.appendix || !o.period)
		th_cli_usage(cmd, "--appendix and --period are required");
	if (!strcmp(cmd, "status"))
		return th_cmd_status(&o);
	if (o.parent && o.level_set)
		th_cli_usage(cmd, "give --level or --parent, not both");
	return th_cmd_rollup(&o);
}
