/* committer.c -- the writer thread (committer.h). */
#include "committer.h"
#include "th_clock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct th_committer {
	th_store *store;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t work, done_cv;
	int efd;                   /* eventfd: non-zero while done is not empty */
	int quit;
	th_job *todo, **todo_tail; /* handed over, not run */
	th_job *done, **done_tail; /* run, not taken back */
	size_t pending;
	char *hold;                /* TH_TEST_COMMIT_HOLD */
};

/* The test hook: blocks until a byte can be read from the FIFO. */
static void hold_commit(void *ctx)
{
	const char *fifo = ctx;
	int fd = open(fifo, O_RDONLY);
	if (fd < 0)
		return;
	char b;
	while (read(fd, &b, 1) < 0 && errno == EINTR)
		;
	close(fd);
}

static void run(th_committer *c, th_job *j)
{
	int64_t t0 = th_mono_us();
	switch (j->type) {
	case TH_JOB_APPLY:
		j->changed = NULL;
		j->n_changed = 0;
		j->rc = th_store_apply(c->store, j->subs, j->n, &j->commit, &j->commit_time, &j->changed,
		                       &j->n_changed);
		break;
	case TH_JOB_HIERARCHY:
		j->rc = th_store_add_hierarchy_from(c->store, j->units, j->origin);
		break;
	case TH_JOB_DEADLINE:
		j->rc = th_store_set_deadline(c->store, j->appendix, j->period, j->unit, j->deadline);
		break;
	default:
		j->rc = TH_EINVAL;
	}
	j->duration_us = th_mono_us() - t0;
}

static void *committer_main(void *arg)
{
	th_committer *c = arg;
	pthread_setname_np(pthread_self(), "th-committer");
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->todo && !c->quit)
			pthread_cond_wait(&c->work, &c->mu);
		th_job *j = c->todo;
		if (!j)
			break;   /* quit, and nothing left to run */
		c->todo = j->next;
		if (!c->todo)
			c->todo_tail = &c->todo;
		pthread_mutex_unlock(&c->mu);
		run(c, j);
		pthread_mutex_lock(&c->mu);
		j->next = NULL;
		*c->done_tail = j;
		c->done_tail = &j->next;
		uint64_t one = 1;
		if (write(c->efd, &one, sizeof one) != sizeof one)
			abort();   /* an eventfd write fails only on overflow: never */
		pthread_cond_broadcast(&c->done_cv);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int th_committer_new(th_store *s, th_committer **out)
{
	th_committer *c = calloc(1, sizeof *c);
	if (!c)
		return TH_ENOMEM;
	int rc = TH_EIO;
	c->store = s;
	c->todo_tail = &c->todo;
	c->done_tail = &c->done;
	const char *hold = getenv("TH_TEST_COMMIT_HOLD");
	if (hold && *hold && !(c->hold = strdup(hold))) {
		rc = TH_ENOMEM;
		goto free_c;
	}
	if ((c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		goto free_hold;
	if (pthread_mutex_init(&c->mu, NULL))
		goto close_efd;
	pthread_cond_init(&c->work, NULL);
	pthread_cond_init(&c->done_cv, NULL);
	if (c->hold)
		th_store_set_commit_hook(s, hold_commit, c->hold);
	if (pthread_create(&c->th, NULL, committer_main, c))
		goto unhook;
	*out = c;
	return TH_OK;
unhook:
	if (c->hold)
		th_store_set_commit_hook(s, NULL, NULL);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->done_cv);
	pthread_mutex_destroy(&c->mu);
close_efd:
	close(c->efd);
free_hold:
	free(c->hold);
free_c:
	free(c);
	return rc;
}

void th_committer_destroy(th_committer **pc)
{
	if (!pc || !*pc)
		return;
	th_committer *c = *pc;
	pthread_mutex_lock(&c->mu);
	c->quit = 1;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->th, NULL);
	if (c->hold)
		th_store_set_commit_hook(c->store, NULL, NULL);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->done_cv);
	pthread_mutex_destroy(&c->mu);
	close(c->efd);
	free(c->hold);
	free(c);
	*pc = NULL;
}

void th_committer_push(th_committer *c, th_job *job)
{
	pthread_mutex_lock(&c->mu);
	job->next = NULL;
	*c->todo_tail = job;
	c->todo_tail = &job->next;
	c->pending++;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->mu);
}

/* Removes j from the done list (c->mu held); the eventfd is emptied with it. */
static void unlink_done(th_committer *c, th_job *j)
{
	th_job **p = &c->done;
	while (*p && *p != j)
		p = &(*p)->next;
	if (!*p)
		return;
	*p = j->next;
	if (c->done_tail == &j->next)
		c->done_tail = p;
	j->next = NULL;
	c->pending--;
	if (!c->done) {
		uint64_t v;
		while (read(c->efd, &v, sizeof v) == sizeof v)
			;
	}
}

th_job *th_committer_take(th_committer *c)
{
	pthread_mutex_lock(&c->mu);
	th_job *j = c->done;
	if (j)
		unlink_done(c, j);
	pthread_mutex_unlock(&c->mu);
	return j;
}

int th_committer_fd(const th_committer *c) { return c->efd; }

size_t th_committer_pending(th_committer *c)
{
	pthread_mutex_lock(&c->mu);
	size_t n = c->pending;
	pthread_mutex_unlock(&c->mu);
	return n;
}

int th_committer_run(th_committer *c, th_job *job)
{
	th_committer_push(c, job);
	pthread_mutex_lock(&c->mu);
	for (;;) {
		th_job *d = c->done;
		while (d && d != job)
			d = d->next;
		if (d)
			break;
		pthread_cond_wait(&c->done_cv, &c->mu);
	}
	unlink_done(c, job);
	pthread_mutex_unlock(&c->mu);
	return job->rc;
}
