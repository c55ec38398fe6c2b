/* th_period.c -- the period grammar and its first and last days. */
#include "th_period.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

int th_period_valid(const char *p)
{
	if (!p)
		return 0;
	size_t n = strlen(p);
	for (int i = 0; i < 4; i++)
		if (!isdigit((unsigned char)p[i]))
			return 0;
	int year = atoi(p);
	if (year < 1900 || year > 2999)
		return 0;
	if (n == 4)
		return 1;
	if (n != 7 || p[4] != '-')
		return 0;
	if (p[5] == 'Q')
		return p[6] >= '1' && p[6] <= '4';
	if (p[5] == 'H')
		return p[6] == '1' || p[6] == '2';
	if (!isdigit((unsigned char)p[5]) || !isdigit((unsigned char)p[6]))
		return 0;
	int m = (p[5] - '0') * 10 + (p[6] - '0');
	return m >= 1 && m <= 12;
}

/* The period's first and last month (1-12), for a valid period. */
static void months(const char *p, int *first, int *last)
{
	if (strlen(p) == 4) {
		*first = 1;
		*last = 12;
	} else if (p[5] == 'Q') {
		*first = (p[6] - '1') * 3 + 1;
		*last = *first + 2;
	} else if (p[5] == 'H') {
		*first = p[6] == '2' ? 7 : 1;
		*last = *first + 5;
	} else {
		*first = *last = (p[5] - '0') * 10 + (p[6] - '0');
	}
}

int32_t th_period_start(const char *p)
{
	if (!th_period_valid(p))
		return 0;
	int first, last;
	months(p, &first, &last);
	return atoi(p) * 10000 + first * 100 + 1;
}

int32_t th_period_end(const char *p)
{
	if (!th_period_valid(p))
		return 0;
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int first, last, y = atoi(p);
	months(p, &first, &last);
	int d = days[last - 1];
	if (last == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		d = 29;
	return y * 10000 + last * 100 + d;
}
