/*
 * test_lexer.c - the scanner: tokens, their locations (1-based line and byte
 * column, tabs counting one), literals and escapes, and lexical errors with
 * their positions and carets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend/ast.h"
#include "testutil.h"

/* Tokens of src as fe_dump_tokens prints them; the diagnostics in *diag_out. */
static char *tokens(const char *src, char **diag_out, int *n_errors) {
  char *buf = NULL, *dbuf = NULL;
  size_t len = 0, dlen = 0;
  FILE *out = open_memstream(&buf, &len), *dout = open_memstream(&dbuf, &dlen);
  FeSource s = {.file = "t.dit", .text = src, .len = strlen(src)};
  FeDiag d = {.out = dout};
  fe_dump_tokens(&s, &d, out);
  fclose(out);
  fclose(dout);
  if (n_errors) *n_errors = d.n_errors;
  if (diag_out) *diag_out = dbuf;
  else free(dbuf);
  return buf;
}

static void expect_tokens(const char *src, const char *want) {
  int n;
  char *diag;
  char *got = tokens(src, &diag, &n);
  assert_string_equal(got, want);
  assert_int_equal(n, 0);
  assert_string_equal(diag, "");
  free(got);
  free(diag);
}

static void test_keywords_and_names(void **state) {
  (void)state;
  expect_tokens("fn model entry config param default return if else for in assert true false none and or not",
                "1:1 'fn'\n1:4 'model'\n1:10 'entry'\n1:16 'config'\n1:23 'param'\n"
                "1:29 'default'\n1:37 'return'\n1:44 'if'\n1:47 'else'\n1:52 'for'\n"
                "1:56 'in'\n1:59 'assert'\n1:66 'true'\n1:71 'false'\n1:77 'none'\n"
                "1:82 'and'\n1:86 'or'\n1:89 'not'\n1:92 end of file\n");
  expect_tokens("fnx _a1 B model2", "1:1 identifier fnx\n1:5 identifier _a1\n"
                                    "1:9 identifier B\n1:11 identifier model2\n"
                                    "1:17 end of file\n");
}

static void test_numbers(void **state) {
  (void)state;
  expect_tokens("0 42 1.5 2e3 1.25e-2 9223372036854775807",
                "1:1 integer 0\n1:3 integer 42\n1:6 number 1.5\n1:10 number 2e3\n"
                "1:14 number 1.25e-2\n1:22 integer 9223372036854775807\n1:41 end of file\n");
  /* `0..n` is a range, not a float; `1.e5` is not a float either */
  expect_tokens("0..n", "1:1 integer 0\n1:2 '..'\n1:4 identifier n\n1:5 end of file\n");
  expect_tokens("a.0(", "1:1 identifier a\n1:2 '.'\n1:3 integer 0\n1:4 '('\n1:5 end of file\n");
}

static void test_operators(void **state) {
  (void)state;
  expect_tokens("+-*/ // % ** == != < <= > >= = , : ; . .. @ ()[]{}",
                "1:1 '+'\n1:2 '-'\n1:3 '*'\n1:4 '/'\n1:6 '//'\n1:9 '%'\n1:11 '**'\n1:14 '=='\n"
                "1:17 '!='\n1:20 '<'\n1:22 '<='\n1:25 '>'\n1:27 '>='\n1:30 '='\n1:32 ','\n"
                "1:34 ':'\n1:36 ';'\n1:38 '.'\n1:40 '..'\n1:43 '@'\n1:45 '('\n1:46 ')'\n1:47 '['\n"
                "1:48 ']'\n1:49 '{'\n1:50 '}'\n1:51 end of file\n");
}

static void test_locations_comments_tabs(void **state) {
  (void)state;
  expect_tokens("# a comment\n\tx = 1 # trailing\r\n  \"s\"\n",
                "2:2 identifier x\n2:4 '='\n2:6 integer 1\n3:3 string s\n"
                "4:1 end of file\n");
}

static void test_strings_and_escapes(void **state) {
  (void)state;
  expect_tokens("\"a\\\"b\\\\c\\nd\" \"\"", "1:1 string a\"b\\c\nd\n1:14 string \n1:16 end of file\n");
}

static void test_errors(void **state) {
  (void)state;
  int n;
  char *diag;
  char *got = tokens("x = $ 1\n", &diag, &n);
  assert_int_equal(n, 1);
  assert_string_equal(diag, "t.dit:1:5: error: unexpected character '$'\nx = $ 1\n    ^\n");
  assert_non_null(strstr(got, "1:5 error\n1:7 integer 1\n"));
  free(got);
  free(diag);

  got = tokens("a\n\t\"open\nb", &diag, &n);
  assert_int_equal(n, 1);
  assert_string_equal(diag, "t.dit:2:2: error: unterminated string (strings end on the same line)\n"
                            "\t\"open\n\t^\n");
  assert_non_null(strstr(got, "2:2 string open\n3:1 identifier b\n"));
  free(got);
  free(diag);

  got = tokens("s = \"a\\qb\"", &diag, &n);
  assert_int_equal(n, 1);
  assert_string_equal(diag, "t.dit:1:7: error: unknown escape sequence '\\q' (known: \\\" \\\\ \\n)\n"
                            "s = \"a\\qb\"\n      ^\n");
  free(got);
  free(diag);

  got = tokens("n = 99999999999999999999 1e999", &diag, &n);
  assert_int_equal(n, 2);
  assert_non_null(strstr(diag, "t.dit:1:5: error: integer literal 99999999999999999999 is too large"));
  assert_non_null(strstr(diag, "t.dit:1:26: error: float literal 1e999 is out of range"));
  free(got);
  free(diag);

  /* a run of non-ASCII bytes is one error; a NUL byte another */
  FeSource s = {.file = "t.dit", .text = "a \xc3\xa9\xc3\xa9 \0 b", .len = 10};
  char *buf = NULL;
  size_t len = 0;
  FILE *dout = open_memstream(&buf, &len);
  FeDiag d = {.out = dout};
  FILE *null = fopen("/dev/null", "w");
  fe_dump_tokens(&s, &d, null);
  fclose(null);
  fclose(dout);
  assert_int_equal(d.n_errors, 2);
  /* the echoed source line holds the NUL: search the whole buffer */
  const char *w1 = "t.dit:1:3: error: unexpected non-ASCII text", *w2 = "t.dit:1:8: error: unexpected byte 0x00";
  assert_non_null(memmem(buf, len, w1, strlen(w1)));
  assert_non_null(memmem(buf, len, w2, strlen(w2)));
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keywords_and_names), cmocka_unit_test(test_numbers),
      cmocka_unit_test(test_operators),          cmocka_unit_test(test_locations_comments_tabs),
      cmocka_unit_test(test_strings_and_escapes), cmocka_unit_test(test_errors),
  };
  return tu_run_group(tests, NULL, NULL);
}
