/* Intrusive doubly linked lists in the style of BSD <sys/queue.h>'s LIST,
 * over an element's own |prev| and |next| pointer members and a list head
 * that is a plain pointer to the first element (NULL: empty). The many
 * per-object lists of the event loop (connections of a listener, streams of
 * a connection, jobs of a module) take and drop elements in O(1) this way
 * without a container allocation.
 *
 * The macros evaluate their arguments more than once: pass plain lvalues
 * (a variable, a member), never an expression with side effects. None
 * allocates or fails; callable from anywhere. */
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

/* Lists with a tail as well, kept in insertion order (BSD TAILQ's use: a
 * FIFO or an LRU), over plain |head| and |tail| pointers (both NULL:
 * empty) and the element's link members named by |prev| and |next|, so one
 * element can sit on several such lists. The same evaluation caveat. */

/* Puts |x| last in the list at |head| .. |tail|: a queue push that also
 * links |x| back to the old tail. */
#define WR_DLIST_APPEND(head, tail, x, prev, next) \
  do {                                             \
    (x)->prev = (tail);                            \
    WR_FIFO_PUSH(head, tail, x, next);             \
  } while (0)

/* Takes |x| out of the list at |head| .. |tail|, which must hold it, and
 * clears |x|'s two link members. */
#define WR_DLIST_REMOVE(head, tail, x, prev, next) \
  do {                                             \
    if ((x)->prev)                                 \
      (x)->prev->next = (x)->next;                 \
    else                                           \
      (head) = (x)->next;                          \
    if ((x)->next)                                 \
      (x)->next->prev = (x)->prev;                 \
    else                                           \
      (tail) = (x)->prev;                          \
    (x)->prev = (x)->next = NULL;                  \
  } while (0)

/* Queues: singly linked, first in first out (BSD STAILQ's use), over plain
 * |head| and |tail| pointers (both NULL: empty) and the element's link
 * member named by |next|. The same evaluation caveat. */

/* Puts |x| last in the queue at |head| .. |tail|. */
#define WR_FIFO_PUSH(head, tail, x, next) \
  do {                                    \
    (x)->next = NULL;                     \
    if (tail)                             \
      (tail)->next = (x);                 \
    else                                  \
      (head) = (x);                       \
    (tail) = (x);                         \
  } while (0)

/* Takes the first element off the queue at |head| .. |tail|, which must
 * not be empty (read |head| first to keep it). Its |next| is left as it
 * was. */
#define WR_FIFO_POP(head, tail, next)    \
  do {                                    \
    (head) = (head)->next;                \
    if (!(head)) (tail) = NULL;           \
  } while (0)

#endif
