/* commands.h -- tonghop-publish's commands, one file each (cmd_*.c), and what
 * they share with main.c.  Private to the program. */
#ifndef TH_COMMANDS_H
#define TH_COMMANDS_H

#include <signal.h>

#include "pubconf.h"

enum {
	EX_OK = 0,          /* every report accepted, duplicate or already delivered */
	EX_REJECTED = 1,    /* some report rejected, stale or refused as old content */
	EX_USAGE = 2,
	EX_UNDELIVERED = 3, /* not acknowledged before the deadline: stays in the outbox */
	EX_INVALID = 4,     /* some file invalid: nothing was sent */
	EX_REFUSED = 5      /* the collector refused this key at the handshake */
};

/* Set by SIGTERM / SIGINT (main.c, cmd_run.c): the command finishes what it is
 * doing and stops. */
extern volatile sig_atomic_t th_pub_stop;
void th_pub_on_signal(int sig);
/* The usage text (main.c). */
void th_pub_usage(FILE *f);

/* Each returns the exit status; args are the operands after the command. */
int cmd_send(th_pubconf *c, int nargs, char **args);
int cmd_withdraw(th_pubconf *c, int nargs, char **args);
int cmd_run(th_pubconf *c, int nargs, char **args);
int cmd_status(th_pubconf *c, int nargs, char **args);
int cmd_prune(th_pubconf *c, int nargs, char **args);

/* The withdrawal of one report key (cmd_withdraw.c). */
typedef struct th_withdrawal {
	const char *unit, *appendix, *period;
} th_withdrawal;

/* The one delivery path of send and withdraw (cmd_send.c): validates the n
 * files (or, with w, makes the tombstone; labels[0] is what its lines are
 * prefixed with), queues them in one durable transaction, delivers everything
 * pending and waits for the acknowledgements until --timeout. */
int cmd_deliver(th_pubconf *c, int n, char **labels, const th_withdrawal *w);

#endif
