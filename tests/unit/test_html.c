/* The HTML escaper (src/lib/html.c): the five special characters, control
 * bytes and invalid UTF-8 made visible, valid multi-byte text kept, a
 * full buffer, and the fixed-size variant. */
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/html.h"
#include "unit.h"

static const char *esc(wr_buf *b, const char *s, size_t n) {
  wr_buf_reset(b);
  assert_int_equal(wr_html_escape_n(b, s, n), WR_OK);
  return wr_buf_cstr(b);
}

static void test_specials(void **state) {
  wr_buf *b = *state;
  assert_string_equal(esc(b, "plain text", 10), "plain text");
  assert_string_equal(esc(b, "<script>alert('x')</script>", 27),
                      "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
  assert_string_equal(esc(b, "a=\"1\"&b", 7), "a=&quot;1&quot;&amp;b");
  /* Already-escaped text is escaped again, not trusted. */
  assert_string_equal(esc(b, "&amp;", 5), "&amp;amp;");
  wr_buf_reset(b);
  assert_int_equal(wr_html_escape(b, NULL), WR_OK);
  assert_int_equal(b->len, 0);
}

static void test_bytes(void **state) {
  wr_buf *b = *state;
  /* Tab, LF and CR stay; NUL, other controls and DEL become U+FFFD. */
  assert_string_equal(esc(b, "a\tb\nc\rd", 7), "a\tb\nc\rd");
  assert_string_equal(esc(b, "a\0b\x1b" "c\x7f", 6), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD");
  /* Valid UTF-8 passes whole. */
  assert_string_equal(esc(b, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x90\x87", 14),
                      "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x90\x87");
  /* Invalid: a lone continuation, a truncated sequence, an overlong '<',
   * a surrogate; each bad byte is one replacement and no '<' slips by. */
  assert_string_equal(esc(b, "\x80", 1), "\xEF\xBF\xBD");
  assert_string_equal(esc(b, "\xE2\x82", 2), "\xEF\xBF\xBD\xEF\xBF\xBD");
  assert_string_equal(esc(b, "\xC0\xBC", 2), "\xEF\xBF\xBD\xEF\xBF\xBD");
  assert_string_equal(esc(b, "\xED\xA0\x80", 3), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

static void test_limits(void **state) {
  (void)state;
  wr_buf b;
  char out[16];
  wr_buf_init(&b, 8, NULL);
  /* "<<" needs 8 bytes: fits; a third does not, and the first two stay. */
  assert_int_equal(wr_html_escape(&b, "<<"), WR_OK);
  assert_int_equal(wr_html_escape(&b, "<"), WR_ERR_LIMIT);
  assert_string_equal(wr_buf_cstr(&b), "&lt;&lt;");
  wr_buf_free(&b);
  assert_int_equal(wr_html_escape_to(out, sizeof(out), "a<b"), 6);
  assert_string_equal(out, "a&lt;b");
  assert_int_equal(wr_html_escape_to(out, sizeof(out), "<<<<"), -1);
  assert_string_equal(out, "");
  assert_int_equal(wr_html_escape_to(out, 7, "a<b"), 6);
  assert_int_equal(wr_html_escape_to(out, 6, "a<b"), -1);
}

int main(void) {
  return UNIT_RUN(NULL, NULL,
                  UNIT_FIXTURE(unit_buf_setup, unit_buf_teardown, test_specials, test_bytes),
                  UNIT_TESTS(test_limits));
}
