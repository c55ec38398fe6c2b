/* th_i18n.c -- gettext set-up (th_i18n.h). */
#include "th_i18n.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>

#ifndef TH_LOCALEDIR
#define TH_LOCALEDIR "/usr/share/locale"
#endif

void th_i18n_init(void)
{
	setlocale(LC_CTYPE, "");
	setlocale(LC_MESSAGES, "");
	const char *dir = getenv("TH_LOCALEDIR");
	bindtextdomain(TH_TEXTDOMAIN, dir && *dir ? dir : TH_LOCALEDIR);
	bind_textdomain_codeset(TH_TEXTDOMAIN, "UTF-8");
}

int th_i18n_vietnamese(void)
{
	/* the catalogue's header names its language; "" when no catalogue answered */
	const char *h = dgettext(TH_TEXTDOMAIN, "");
	return h && strstr(h, "Language: vi") != NULL;
}
