/* cmd_withdraw.c -- `tonghop-publish withdraw UNIT APPENDIX PERIOD`: a tombstone
 * revision of one report key, delivered through send's path (cmd_deliver). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "th_report.h"

int cmd_withdraw(th_pubconf *c, int nargs, char **args)
{
	if (nargs != 3) {
		fprintf(stderr, "tonghop-publish withdraw: expected UNIT APPENDIX PERIOD (%s)\n",
		        nargs < 3 ? "too few arguments" : "too many arguments");
		th_pub_usage(stderr);
		return EX_USAGE;
	}
	th_withdrawal w = {args[0], args[1], args[2]};
	if (!*w.unit || strlen(w.unit) > TH_CODE_MAX || strpbrk(w.unit, " \t\r\n")) {
		fprintf(stderr, "tonghop-publish withdraw: unit code \"%.64s\" is empty, too long or "
		                "has blanks\n", w.unit);
		return EX_USAGE;
	}
	if (!*w.appendix || strlen(w.appendix) > TH_CODE_MAX) {
		fprintf(stderr, "tonghop-publish withdraw: appendix \"%.64s\" is empty or too long\n",
		        w.appendix);
		return EX_USAGE;
	}
	if (!th_period_valid(w.period)) {
		fprintf(stderr, "tonghop-publish withdraw: period \"%.32s\" is not yyyy, yyyy-Qn, "
		                "yyyy-Hn or yyyy-mm\n", w.period);
		return EX_USAGE;
	}
	char label[] = "withdrawal";
	char *labels[1] = {label};
	return cmd_deliver(c, 1, labels, &w);
}
