/* Intrusive doubly linked lists in the style of BSD <sys/queue.h>'s LIST,
 * over an element's own |prev| and |next| pointer members and a list head
 * that is a plain pointer to the first element (NULL: empty). The many
 * per-object lists of the event loop (connections of a listener, streams of
 * a connection, jobs of a module) take and drop elements in O(1) this way
 * without a container allocation.
 *
 * Both macros evaluate |head| and |x| more than once: pass plain lvalues
 * (a variable, a member), never an expression with side effects. Neither
 * allocates nor fails; callable from anywhere. */
#ifndef WR_LIB_LIST_H
#define WR_LIB_LIST_H

/* Puts |x| first in the list at |head|. */
#define WR_LIST_INSERT_HEAD(head, x)              \
  do {                                            \
    (x)->prev = NULL;                             \
    (x)->next = (head);                           \
    if ((x)->next) (x)->next->prev = (x);         \
    (head) = (x);                                 \
  } while (0)

/* Takes |x| out of the list at |head|, which must hold it. |x|'s own
 * pointers are left as they were. */
#define WR_LIST_REMOVE(head, x)                   \
  do {                                            \
    if ((x)->prev)                                \
      (x)->prev->next = (x)->next;                \
    else                                          \
      (head) = (x)->next;                         \
    if ((x)->next) (x)->next->prev = (x)->prev;   \
  } while (0)

#endif
