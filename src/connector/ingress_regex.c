/* Ingress path patterns: Go RE2 -> POSIX ERE; see ingress_int.h.
 *
 * Path patterns are Go RE2 in cloudflared; Warren compiles them with POSIX
 * regcomp(REG_EXTENDED|REG_NOSUB). For the patterns people write for URL
 * paths RE2 and POSIX ERE agree (literals, ., [], *, +, ?, {n,m}, |, (), ^,
 * $), so ERE serves as a compatible subset once the common RE2-only spellings
 * are rewritten: \d \w \s and their negations, (?:...) groups, a leading
 * (?i) flag, and lazy quantifiers (*? +? ?? {n}?, whose laziness cannot
 * change whether a path matches). Anything else RE2-specific (\b, \pL, other
 * flags, named groups) is refused with a clear error rather than silently
 * meaning something else; so are backreferences, which RE2 lacks.
 *
 * glibc's regcomp copies the operand of + and {n,m} once per repetition, so
 * stacked or nested repetitions grow exponentially ("a+++...", "((a+)+)+").
 * RE2 refuses stacked repetitions and so does this; nested ones are bounded
 * by estimating the size of the expanded tree.
 *
 * The translator reads one construct at a time (an escape, a bracket
 * expression, a group opening or closing, an alternation, a quantifier, a
 * literal); each has its function, which consumes the whole construct and
 * writes its ERE form. */
#include <ctype.h>
#include <string.h>

#include "connector/ingress_int.h"

#define RE_MAX_NODES 20000.0
#define RE_MAX_GROUPS 64
#define RE_MAX_COUNT 1000 /* largest n and m of {n,m}, as RE2 */

typedef struct re_group {
  double total; /* estimated nodes of the group so far */
  double last;  /* nodes of its last atom, which a quantifier multiplies */
} re_group;

/* What a quantifier may follow. */
enum re_quant {
  Q_NONE = 0, /* an atom, a group start or '|': a quantifier may come */
  Q_GREEDY,   /* a quantifier: only one '?' (making it lazy) may follow */
  Q_LAZY      /* a quantifier and its '?': nothing repeats it again */
};

typedef struct re_tr {
  const char *re; /* the RE2 pattern */
  size_t len, i;  /* its length; the next byte to read */
  char *out;      /* the ERE being written */
  size_t o, cap;
  size_t depth; /* open groups; g[0] is the whole pattern */
  re_group g[RE_MAX_GROUPS + 1];
  int quant; /* enum re_quant */
  const char *why;
} re_tr;

static int fail(re_tr *t, const char *why) {
  t->why = why;
  return -1;
}

/* Writes |n| bytes, keeping room for the final NUL. */
static int put(re_tr *t, const char *s, size_t n) {
  if (t->o + n >= t->cap) return fail(t, "pattern too long");
  memcpy(t->out + t->o, s, n);
  t->o += n;
  return 0;
}

static int puts_(re_tr *t, const char *s) { return put(t, s, strlen(s)); }

/* Something a quantifier can repeat, of about |nodes| nodes, was written. */
static void atom(re_tr *t, double nodes) {
  t->g[t->depth].last = nodes;
  t->g[t->depth].total += nodes;
  t->quant = Q_NONE;
}

static int check_size(re_tr *t) {
  if (t->g[t->depth].total > RE_MAX_NODES)
    return fail(t, "pattern expands to too many states (nested repetitions)");
  return 0;
}

/* The ERE of an RE2 class shorthand (\d \D \w \W \s \S), or NULL. */
static const char *class_ere(char e) {
  switch (e) {
  case 'd': return "[0-9]";
  case 'D': return "[^0-9]";
  case 'w': return "[[:alnum:]_]";
  case 'W': return "[^[:alnum:]_]";
  case 's': return "[[:space:]]";
  case 'S': return "[^[:space:]]";
  default: return NULL;
  }
}

/* \x outside brackets: a class shorthand or escaped punctuation. */
static int tr_escape(re_tr *t) {
  char e = t->re[t->i + 1];
  const char *cls = class_ere(e);
  t->i += 2;
  if (cls) {
    if (puts_(t, cls)) return -1;
  } else if (e >= '0' && e <= '9') {
    return fail(t, "backreferences are not supported");
  } else if (!e) {
    return fail(t, "trailing backslash");
  } else if (!strchr(".[]{}()*+?^$|\\/-", e)) {
    return fail(t, "this RE2 escape is not supported (supported: \\d \\w \\s \\D \\W \\S and "
                   "escaped punctuation)");
  } else if (e == '/' || e == '-' ? put(t, &e, 1) : put(t, (char[]){'\\', e}, 2)) {
    return -1; /* '/' and '-' are not special in ERE: written bare */
  }
  atom(t, 1);
  return 0;
}

/* \x inside brackets: POSIX reads a backslash literally there, so the
 * shorthands are expanded and escaped punctuation is written bare. */
static int tr_bracket_escape(re_tr *t) {
  char e = t->re[++t->i];
  t->i++;
  if (e == 'd') return puts_(t, "0-9");
  if (e == 'w') return puts_(t, "[:alnum:]_");
  if (e == 's') return puts_(t, "[:space:]");
  if (e && strchr("./*+?(){}|$\\", e)) return put(t, &e, 1);
  return fail(t, "this escape inside [...] is not supported (write ] first, - last)");
}

/* [:class:], [=x=] or [.x.] inside brackets, copied as is. */
static int tr_bracket_class(re_tr *t) {
  const char *at = t->re + t->i;
  const char *end = strstr(at + 2, (char[]){at[1], ']', 0});
  if (!end) return fail(t, "unterminated character class");
  size_t l = (size_t)(end + 2 - at);
  t->i += l;
  return put(t, at, l);
}

/* One member of a bracket expression. */
static int tr_bracket_item(re_tr *t) {
  const char *c = t->re + t->i;
  if (c[0] == '\\') return tr_bracket_escape(t);
  if (c[0] == '[' && (c[1] == ':' || c[1] == '=' || c[1] == '.')) return tr_bracket_class(t);
  t->i++;
  return put(t, c, 1);
}

/* A bracket expression: one atom. A ']' right after "[" or "[^" is a
 * member, as in both dialects. */
static int tr_bracket(re_tr *t) {
  if (puts_(t, "[")) return -1;
  t->i++;
  if (t->re[t->i] == '^') {
    if (puts_(t, "^")) return -1;
    t->i++;
  }
  for (int first = 1;; first = 0) {
    char c = t->re[t->i];
    if (!c) return fail(t, "missing closing ]");
    if (c == ']' && !first) break;
    if (tr_bracket_item(t)) return -1;
  }
  t->i++;
  if (puts_(t, "]")) return -1;
  atom(t, 1);
  return 0;
}

/* '(' or the non-capturing "(?:"; other "(?" forms are refused. */
static int tr_group_open(re_tr *t) {
  if (t->re[t->i + 1] == '?') {
    if (t->re[t->i + 2] != ':') return fail(t, "RE2 flags and named groups are not supported");
    t->i += 2;
  }
  t->i++;
  if (t->depth == RE_MAX_GROUPS) return fail(t, "groups nested too deeply");
  t->g[++t->depth] = (re_group){0, 0};
  t->quant = Q_NONE;
  return puts_(t, "(");
}

/* ')' closing an open group: the group is an atom of its parent. */
static int tr_group_close(re_tr *t) {
  double n = t->g[t->depth--].total + 1;
  t->i++;
  if (puts_(t, ")")) return -1;
  atom(t, n);
  return check_size(t);
}

static int tr_alternation(re_tr *t) {
  t->i++;
  t->g[t->depth].last = 0;
  t->quant = Q_NONE;
  return puts_(t, "|");
}

static int is_interval(const re_tr *t) {
  return t->re[t->i] == '{' && isdigit((unsigned char)t->re[t->i + 1]);
}

static int is_quantifier(const re_tr *t) {
  char c = t->re[t->i];
  return c == '*' || c == '+' || c == '?' || is_interval(t);
}

static long read_count(const char *re, size_t *j) {
  long n = 0;
  while (isdigit((unsigned char)re[*j]) && n <= RE_MAX_COUNT) n = n * 10 + (re[(*j)++] - '0');
  return n;
}

/* {n}, {n,} or {n,m} at t->i: sets *end to its '}' and *factor to how many
 * copies of the operand regcomp makes. */
static int read_interval(re_tr *t, size_t *end, double *factor) {
  long lo, hi = -1;
  size_t j = t->i + 1;
  lo = read_count(t->re, &j);
  if (t->re[j] == ',') {
    j++;
    if (isdigit((unsigned char)t->re[j])) hi = read_count(t->re, &j);
  }
  if (lo > RE_MAX_COUNT || hi > RE_MAX_COUNT) return fail(t, "repetition count above 1000");
  if (t->re[j] != '}') return fail(t, "malformed {n,m} repetition");
  *factor = hi >= 0 ? (hi > 1 ? hi : 1) : lo + 1;
  *end = j;
  return 0;
}

/* * + ? {n,m}: copied, and the operand's estimated size multiplied. */
static int tr_quantifier(re_tr *t) {
  char c = t->re[t->i];
  double factor = c == '+' ? 2 : 1;
  size_t start = t->i, end = t->i;
  re_group *g = &t->g[t->depth];
  if (t->quant != Q_NONE) {
    /* One '?' after a quantifier makes it lazy: drop it. */
    if (c == '?' && t->quant == Q_GREEDY) {
      t->quant = Q_LAZY;
      t->i++;
      return 0;
    }
    return fail(t, "invalid nested repetition operator");
  }
  if (is_interval(t) && read_interval(t, &end, &factor)) return -1;
  t->i = end + 1;
  if (put(t, t->re + start, end - start + 1)) return -1;
  g->total += g->last * (factor - 1);
  g->last *= factor;
  t->quant = Q_GREEDY;
  return check_size(t);
}

static int tr_literal(re_tr *t) {
  if (put(t, t->re + t->i, 1)) return -1;
  t->i++;
  atom(t, 1);
  return 0;
}

/* One construct at t->i. An unmatched ')' is a literal here; regcomp
 * judges it. */
static int tr_next(re_tr *t) {
  char c = t->re[t->i];
  if (c == '\\') return tr_escape(t);
  if (c == '[') return tr_bracket(t);
  if (c == '(') return tr_group_open(t);
  if (c == ')' && t->depth > 0) return tr_group_close(t);
  if (c == '|') return tr_alternation(t);
  if (is_quantifier(t)) return tr_quantifier(t);
  return tr_literal(t);
}

int wr__ingress_regex_translate(const char *re, char *out, size_t cap, int *icase,
                                const char **why) {
  re_tr t = {.re = re, .len = strlen(re), .out = out, .cap = cap};
  *icase = 0;
  if (strncmp(re, "(?i)", 4) == 0) *icase = 1, t.i = 4;
  while (t.i < t.len)
    if (tr_next(&t) != 0) {
      *why = t.why;
      return -1;
    }
  out[t.o] = '\0';
  return 0;
}
