/* th_i18n.h -- messages in the user's language (GNU gettext, text domain "tonghop").
 *
 * Programs call th_i18n_init() first thing in main().  Every message for people
 * is written in English in the source and wrapped in _() (or N_() where the
 * string is a static initialiser, translated later with _(s)); po/vi.po holds
 * the Vietnamese.  Only LC_MESSAGES and LC_CTYPE follow the environment:
 * LC_NUMERIC and LC_TIME stay "C" so that numbers and dates the programs parse or
 * write for other programs never change with the locale (Vietnamese number
 * formatting for people is done explicitly, not through printf).
 *
 * Libraries translate too (their messages reach people), but never call
 * th_i18n_init themselves. */
#ifndef TH_I18N_H
#define TH_I18N_H

#include <libintl.h>

#define TH_TEXTDOMAIN "tonghop"
#define _(s) dgettext(TH_TEXTDOMAIN, s)
#define N_(s) (s)
/* Plural forms: n chooses between the English singular and plural. */
#define P_(one, many, n) dngettext(TH_TEXTDOMAIN, one, many, (unsigned long)(n))

/* setlocale for LC_CTYPE and LC_MESSAGES from the environment, and the
 * catalogue directory: $TH_LOCALEDIR when set (tests, a build tree), else the
 * installed one. */
void th_i18n_init(void);

/* 1 when messages come out in Vietnamese (the catalogue answers for "vi"). */
int th_i18n_vietnamese(void);

#endif
