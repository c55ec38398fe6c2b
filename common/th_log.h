/* th_log.h -- the daemons' log: one line per event, "LEVEL component: message",
 * on stderr. */
#ifndef TH_LOG_H
#define TH_LOG_H

enum { TH_LOG_ERROR = 0, TH_LOG_WARN, TH_LOG_INFO, TH_LOG_DEBUG };

extern int th_log_level;
/* Level from "error", "warn", "info", "debug"; -1 when unknown. */
int th_log_parse_level(const char *s);
void th_log(int level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
