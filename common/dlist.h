/* Intrusive doubly linked lists, as the front ends keep their live sessions: a node is any
 * struct with `next` and `prev` pointers to its own type, a list is a head pointer (NULL when
 * empty). Macros, as the node types differ; each argument is evaluated more than once, so
 * pass plain lvalues. */
#ifndef PM_DLIST_H
#define PM_DLIST_H
#include <stddef.h>

/* node goes first in the list at head. */
#define PM_DLIST_PUSH(head, node)                                                             \
    do {                                                                                      \
        (node)->prev = NULL;                                                                  \
        (node)->next = (head);                                                                \
        if ((node)->next)                                                                     \
            (node)->next->prev = (node);                                                      \
        (head) = (node);                                                                      \
    } while (0)

/* node leaves the list at head (its own next and prev are left as they were). */
#define PM_DLIST_REMOVE(head, node)                                                           \
    do {                                                                                      \
        if ((node)->prev)                                                                     \
            (node)->prev->next = (node)->next;                                                \
        else                                                                                  \
            (head) = (node)->next;                                                            \
        if ((node)->next)                                                                     \
            (node)->next->prev = (node)->prev;                                                \
    } while (0)

/* FIFO queues of the same nodes: a struct with `head`, `tail` and a count `n`. */
#define PM_DQUEUE_APPEND(q, node)                                                             \
    do {                                                                                      \
        (node)->next = NULL;                                                                  \
        (node)->prev = (q)->tail;                                                             \
        if ((q)->tail)                                                                        \
            (q)->tail->next = (node);                                                         \
        else                                                                                  \
            (q)->head = (node);                                                               \
        (q)->tail = (node);                                                                   \
        (q)->n++;                                                                             \
    } while (0)

/* node leaves the queue q (its next and prev are cleared). */
#define PM_DQUEUE_REMOVE(q, node)                                                             \
    do {                                                                                      \
        if ((node)->prev)                                                                     \
            (node)->prev->next = (node)->next;                                                \
        else                                                                                  \
            (q)->head = (node)->next;                                                         \
        if ((node)->next)                                                                     \
            (node)->next->prev = (node)->prev;                                                \
        else                                                                                  \
            (q)->tail = (node)->prev;                                                         \
        (node)->prev = (node)->next = NULL;                                                   \
        (q)->n--;                                                                             \
    } while (0)

#endif
