#include "pool.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

struct delivery_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct delivery_job *head, *tail; /* waiting to start */
    int stopping;
    int busy; /* queued + running; touched only by the loop thread */
    int nthreads;
    pthread_t *threads;
    int pipefd[2]; /* finished jobs: the pool's threads write job pointers */
    struct event *ev;
    delivery_pool_done done;
    void *arg;
};

static void *pool_thread(void *arg)
{
    struct delivery_pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->stopping) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        struct delivery_job *job = p->head;
        p->head = job->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);

        delivery_job_run(job);
        /* A pointer is far below PIPE_BUF: the write is atomic; it blocks only if the loop
         * thread stopped reading, which it never does while threads run. */
        ssize_t w;
        do
            w = write(p->pipefd[1], &job, sizeof job);
        while (w < 0 && errno == EINTR);
    }
}

static void drain_finished(struct delivery_pool *p)
{
    struct delivery_job *job;
    for (;;) {
        ssize_t r = read(p->pipefd[0], &job, sizeof job);
        if (r != (ssize_t)sizeof job)
            return;
        p->busy--;
        p->done(job, p->arg);
    }
}

static void on_finished(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain_finished(arg);
}

struct delivery_pool *delivery_pool_new(struct event_base *base, int threads, delivery_pool_done done, void *arg)
{
    struct delivery_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->done = done;
    p->arg = arg;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    if (pipe2(p->pipefd, O_CLOEXEC) < 0) {
        free(p);
        return NULL;
    }
    fcntl(p->pipefd[0], F_SETFL, O_NONBLOCK);
    p->ev = event_new(base, p->pipefd[0], EV_READ | EV_PERSIST, on_finished, p);
    event_add(p->ev, NULL);
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    for (int i = 0; p->threads && i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_thread, p) != 0) {
            pm_log(PM_WARN, "event=thread_error started=%d wanted=%d", i, threads);
            break;
        }
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        delivery_pool_free(p);
        return NULL;
    }
    return p;
}

void delivery_pool_submit(struct delivery_pool *p, struct delivery_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    p->busy++;
}

int delivery_pool_busy(const struct delivery_pool *p) { return p->busy; }

void delivery_pool_free(struct delivery_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    struct delivery_job *unstarted = p->head;
    p->head = p->tail = NULL;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    drain_finished(p);
    while (unstarted) {
        struct delivery_job *next = unstarted->next;
        delivery_job_free(unstarted);
        unstarted = next;
    }
    event_free(p->ev);
    close(p->pipefd[0]);
    close(p->pipefd[1]);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}
