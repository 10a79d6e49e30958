/* Copies of several strings in one allocation (src/lib/strpack.c): each
 * destination gets its own copy (equal text, another address, writable),
 * a NULL source gives NULL, and one free() releases them all (ASan's leak
 * check fails otherwise). */
#include <stdlib.h>
#include <string.h>

#include "lib/strpack.h"
#include "unit.h"

static void test_copies_in_one_block(void **state) {
  (void)state;
  char src_host[] = "example.com";
  char *host = NULL, *empty = NULL, *none = src_host, *alpn = NULL;
  const wr_strcopy items[] = {{src_host, &host}, {"", &empty}, {NULL, &none}, {"h2,http/1.1", &alpn}};
  char *block = wr_strpack(items, sizeof(items) / sizeof(items[0]));
  assert_non_null(block);
  assert_ptr_equal(host, block); /* the first copy starts the block */
  assert_string_equal(host, "example.com");
  assert_ptr_not_equal(host, src_host);
  assert_string_equal(empty, "");
  assert_null(none);
  assert_string_equal(alpn, "h2,http/1.1");
  src_host[0] = 'E'; /* a copy: the source may change or go */
  assert_string_equal(host, "example.com");
  host[0] = 'x'; /* writable, and no copy overlaps the next */
  assert_string_equal(host, "xxample.com");
  assert_string_equal(empty, "");
  free(block);
}

static void test_all_null_is_no_block(void **state) {
  (void)state;
  char *a = (char *)"stale", *b = (char *)"stale";
  const wr_strcopy items[] = {{NULL, &a}, {NULL, &b}};
  assert_null(wr_strpack(items, 2));
  assert_null(a);
  assert_null(b);
  assert_null(wr_strpack(NULL, 0));
}

int main(void) {
  return UNIT_RUN(NULL, NULL, UNIT_TESTS(test_copies_in_one_block, test_all_null_is_no_block));
}
