/* The signing threads (dkim_sign.h): a bounded list of submissions to sign, a few threads
 * that sign them (queue_dkim_sign_submit touches only its own submission and the keys,
 * which nobody changes after start), and an eventfd that wakes the event loop to take the
 * signed ones back in the order they finished. */
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dkim_sign.h"
#include "log.h"
#include "postmesh.pb-c.h"

#define MAX_THREADS 8

struct job {
    Postmesh__BusMessage *bm;
    uint8_t peer[256];
    size_t peerlen;
    struct dkim_outcome outcome;
    struct job *next;
};

struct list {
    struct job *head, *tail;
};

struct dkim_pool {
    struct dkim_signer *signer;
    pthread_mutex_t lock;
    pthread_cond_t work;
    struct list todo, done;
    size_t jobs, max_jobs; /* taken and not yet given back */
    int stop;
    pthread_t threads[MAX_THREADS];
    int nthreads;
    int efd;
    struct event *ev;
    dkim_pool_done_fn *done_fn;
    void *arg;
};

static void push(struct list *l, struct job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static struct job *pop(struct list *l)
{
    struct job *j = l->head;
    if (j) {
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
    }
    return j;
}

static void *worker(void *arg)
{
    struct dkim_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && !p->todo.head)
            pthread_cond_wait(&p->work, &p->lock);
        if (p->stop)
            break;
        struct job *j = pop(&p->todo);
        pthread_mutex_unlock(&p->lock);
        queue_dkim_sign_submit(p->signer, j->bm->submit, &j->outcome);
        pthread_mutex_lock(&p->lock);
        push(&p->done, j);
        uint64_t one = 1;
        if (write(p->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            pm_log(PM_ERR, "event=dkim_pool_error error=\"%s\"", strerror(errno));
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* In the loop: every finished submission back to its admission. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct dkim_pool *p = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&p->lock);
    struct list done = p->done;
    p->done.head = p->done.tail = NULL;
    pthread_mutex_unlock(&p->lock);
    for (struct job *j; (j = pop(&done));) {
        pthread_mutex_lock(&p->lock);
        p->jobs--;
        pthread_mutex_unlock(&p->lock);
        p->done_fn(p->arg, j->bm, j->peer, j->peerlen, &j->outcome);
        free(j);
    }
}

struct dkim_pool *queue_dkim_pool_new(struct event_base *base, struct dkim_signer *d, int threads, size_t max_jobs,
                                      dkim_pool_done_fn *done, void *arg)
{
    struct dkim_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->signer = d;
    p->max_jobs = max_jobs;
    p->done_fn = done;
    p->arg = arg;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->ev = p->efd >= 0 ? event_new(base, p->efd, EV_READ | EV_PERSIST, on_done, p) : NULL;
    if (!p->ev || event_add(p->ev, NULL) < 0) {
        pm_log(PM_ERR, "event=dkim_pool_error error=\"no eventfd: %s\" signing=inline", strerror(errno));
        queue_dkim_pool_free(p);
        return NULL;
    }
    threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    for (; p->nthreads < threads; p->nthreads++)
        if (pthread_create(&p->threads[p->nthreads], NULL, worker, p) != 0)
            break;
    if (p->nthreads == 0) {
        pm_log(PM_ERR, "event=dkim_pool_error error=\"no threads\" signing=inline");
        queue_dkim_pool_free(p);
        return NULL;
    }
    return p;
}

int queue_dkim_pool_take(struct dkim_pool *p, Postmesh__BusMessage *bm, const uint8_t *peer, size_t peerlen)
{
    if (!p || !bm->submit->originating || bm->submit->is_dsn)
        return 0;
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return 0;
    j->bm = bm;
    j->peerlen = peerlen < sizeof j->peer ? peerlen : sizeof j->peer;
    memcpy(j->peer, peer, j->peerlen);
    pthread_mutex_lock(&p->lock);
    int room = p->jobs < p->max_jobs;
    if (room) {
        p->jobs++;
        push(&p->todo, j);
        pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->lock);
    if (!room)
        free(j); /* full: the caller signs inline, which slows the reading of more */
    return room;
}

static void drop(struct list *l)
{
    for (struct job *j; (j = pop(l));) {
        postmesh__bus_message__free_unpacked(j->bm, NULL);
        free(j);
    }
}

void queue_dkim_pool_free(struct dkim_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    drop(&p->todo);
    drop(&p->done);
    if (p->ev)
        event_free(p->ev);
    if (p->efd >= 0)
        close(p->efd);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    free(p);
}
