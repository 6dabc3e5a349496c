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

#endif
