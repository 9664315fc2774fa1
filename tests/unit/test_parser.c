/*
 * test_parser.c - the grammar: tree shapes (precedence, calls, scoped calls,
 * params, statements, declarations) printed as S-expressions by ast_print,
 * syntax errors with their positions, and recovery that reports several
 * errors in one run.
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

typedef struct {
  char *tree;  /* ast_print of the file */
  char *diag;  /* diagnostics */
  int errors;
} Parsed;

static Parsed parse(const char *src) {
  Parsed p = {0};
  size_t tl = 0, dl = 0;
  FILE *tree = open_memstream(&p.tree, &tl), *diag = open_memstream(&p.diag, &dl);
  FeSource s = {.file = "p.dit", .text = src, .len = strlen(src)};
  FeDiag d = {.out = diag};
  Arena arena = {0};
  AstNode *root = NULL;
  p.errors = fe_parse(&s, &arena, &d, &root);
  assert_int_equal(p.errors, d.n_errors);
  ast_print(root, tree);
  fclose(tree);
  fclose(diag);
  arena_free(&arena);
  return p;
}

static void parsed_free(Parsed *p) {
  free(p->tree);
  free(p->diag);
}

/* The tree of `fn f() { BODY }`'s body statements. */
static void expect_body(const char *body, const char *want) {
  char src[1024], full[2048];
  snprintf(src, sizeof src, "fn f() {\n%s\n}", body);
  snprintf(full, sizeof full, "(file ((fn f () (%s))))", want);
  Parsed p = parse(src);
  if (p.errors) fprintf(stderr, "%s", p.diag);
  assert_int_equal(p.errors, 0);
  assert_string_equal(p.tree, full);
  parsed_free(&p);
}

static void test_precedence(void **state) {
  (void)state;
  expect_body("c = -x ** 2 + 3 * y // 4 % 5 - z",
              "(assign ((name c)) (binop - (binop + (unop - (binop ** (name x) (int 2))) "
              "(binop % (binop // (binop * (int 3) (name y)) (int 4)) (int 5))) (name z)))");
  expect_body("d = not a == b and c < 1 or false",
              "(assign ((name d)) (binop or (binop and (unop not (binop == (name a) (name b))) "
              "(binop < (name c) (int 1))) (bool false)))");
  /* ** is right-associative; unary minus binds looser than ** and tighter than * */
  expect_body("e = 2 ** 3 ** 2 * -1", "(assign ((name e)) (binop * (binop ** (int 2) (binop ** (int 3) (int 2))) "
                                       "(unop - (int 1))))");
  expect_body("e = (1 + 2) * l[0][1]", "(assign ((name e)) (binop * (binop + (int 1) (int 2)) "
                                        "(index (index (name l) (int 0)) (int 1))))");
}

static void test_calls_and_literals(void **state) {
  (void)state;
  expect_body("a, b = g@blocks[i].attn.0(x, y = 1)",
              "(assign ((name a) (name b)) (call g @((seg blocks) (seg-expr (name i)) (seg attn) (seg 0)) "
              "((name x) (kw y (int 1)))))");
  /* blocks.1.2 lexes a float: the path still gets two segments */
  expect_body("h@blocks.1.2()", "(expr (call h @((seg blocks) (seg 1) (seg 2)) ()))");
  expect_body("l = [1, 2.5, \"s\", none, true, []]",
              "(assign ((name l)) (list ((int 1) (float 2.5) (str \"s\") (none) (bool true) (list ()))))");
}

static void test_params(void **state) {
  (void)state;
  expect_body("w = param blocks[i].w.1[4, n] default sincos(4, 2) + 1",
              "(assign ((name w)) (param (binop + (call sincos ((int 4) (int 2))) (int 1)) "
              "((seg blocks) (seg-expr (name i)) (seg w) (seg 1)) ((int 4) (name n))))");
  expect_body("v = linear(x, param weight[n], param bias[3])",
              "(assign ((name v)) (call linear ((name x) (param ((seg weight)) ((name n))) "
              "(param ((seg bias)) ((int 3))))))");
}

static void test_statements(void **state) {
  (void)state;
  expect_body("if a { return 1 } else if b { return 2 } else { return 3 }",
              "(if (name a) ((return ((int 1)))) (if (name b) ((return ((int 2)))) "
              "(block ((return ((int 3)))))))");
  expect_body("for i in 0 .. n { assert i < n, \"msg\"; assert ok }",
              "(for i (int 0) (name n) ((assert (binop < (name i) (name n)) (str \"msg\")) (assert (name ok))))");
  expect_body("h(x)\nreturn a, b", "(expr (call h ((name x)))) (return ((name a) (name b)))");
  /* no separators needed; a new line starting with `(` continues the expression */
  expect_body("a = b c = d", "(assign ((name a)) (name b)) (assign ((name c)) (name d))");
  expect_body("a = b\n(c)", "(assign ((name a)) (call b ((name c))))");
  expect_body("a = b; (c)", "(assign ((name a)) (name b)) (expr (name c))");
}

static void test_declarations(void **state) {
  (void)state;
  Parsed p = parse("model m(n: int = 3, s) {\n"
                   "  k = n\n"
                   "  fn inner() { return k }\n"
                   "  entry forward(x: f32[B, 2 * B], s: f32[]) { return x }\n"
                   "}\n"
                   "config \"c/1\" = m(n = 4, s = \"a\")\n");
  assert_int_equal(p.errors, 0);
  assert_string_equal(p.tree,
                      "(file ((model m ((decl n:int (int 3)) (decl s)) ((assign ((name k)) (name n)) "
                      "(fn inner () ((return ((name k))))) (entry forward ((input x:f32 ((name B) "
                      "(binop * (int 2) (name B)))) (input s:f32 ())) ((return ((name x))))))) "
                      "(config \"c/1\" m ((kw n (int 4)) (kw s (str \"a\"))))))");
  parsed_free(&p);
}

static void test_syntax_error_message(void **state) {
  (void)state;
  Parsed p = parse("fn f(x) {\n\ta = x +* 2\n}\n");
  assert_int_equal(p.errors, 1);
  assert_string_equal(p.diag, "p.dit:2:9: error: syntax error, unexpected '*'\n\ta = x +* 2\n\t       ^\n");
  parsed_free(&p);

  p = parse("fn f(x) {\n  return x\n");
  assert_int_equal(p.errors, 1);
  assert_string_equal(p.diag, "p.dit:3:1: error: syntax error, unexpected end of file\n");
  parsed_free(&p);

  p = parse("config \"a\" = m(1)");
  assert_int_equal(p.errors, 1);
  assert_string_equal(p.diag, "p.dit:1:16: error: syntax error, unexpected integer, expecting identifier or ')'\n"
                              "config \"a\" = m(1)\n               ^\n");
  parsed_free(&p);
}

/* Recovery: one error per broken statement or item, nothing in between. */
static void test_recovery(void **state) {
  (void)state;
  Parsed p = parse("fn f(x) {\n"
                   "  a = x +* 2\n"      /* 2:10 */
                   "  b = (x\n"
                   "  c = 3\n"           /* 4:3: the ')' is missing */
                   "  return a\n"
                   "}\n"
                   "model m(n: int = 3) {\n"
                   "  y = n +\n"
                   "  entry forward(x: f32[B, 4]) {\n" /* 9:3 */
                   "    return x\n"
                   "  }\n"
                   "}\n"
                   "config \"c\" = m(n = )\n"          /* 13:20 */
                   "fn g() { return ] }\n"            /* 14:17 */
                   "fn h() { return 1 }\n");
  assert_int_equal(p.errors, 5);
  const char *want[] = {"p.dit:2:10: error: syntax error, unexpected '*'",
                        "p.dit:4:3: error: syntax error, unexpected identifier",
                        "p.dit:9:3: error: syntax error, unexpected 'entry'",
                        "p.dit:13:20: error: syntax error, unexpected ')'",
                        "p.dit:14:17: error: syntax error, unexpected ']'"};
  const char *at = p.diag;
  for (int i = 0; i < 5; i++) {
    const char *hit = strstr(at, want[i]);
    if (!hit) fprintf(stderr, "missing: %s\nin:\n%s", want[i], p.diag);
    assert_non_null(hit);
    at = hit + 1;
  }
  /* the items after the errors are still there */
  assert_non_null(strstr(p.tree, "(fn h () ((return ((int 1)))))"));
  parsed_free(&p);
}

static void test_deep_nesting_is_an_error(void **state) {
  (void)state;
  size_t n = 5000;
  char *src = malloc(2 * n + 64);
  strcpy(src, "fn f() { return ");
  size_t at = strlen(src);
  for (size_t i = 0; i < n; i++) src[at++] = '(';
  src[at++] = '1';
  for (size_t i = 0; i < n; i++) src[at++] = ')';
  strcpy(src + at, " }");
  Parsed p = parse(src);
  assert_true(p.errors >= 1);
  assert_non_null(strstr(p.diag, "nests too deeply"));
  parsed_free(&p);
  free(src);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_precedence),      cmocka_unit_test(test_calls_and_literals),
      cmocka_unit_test(test_params),          cmocka_unit_test(test_statements),
      cmocka_unit_test(test_declarations),    cmocka_unit_test(test_syntax_error_message),
      cmocka_unit_test(test_recovery),        cmocka_unit_test(test_deep_nesting_is_an_error),
  };
  return tu_run_group(tests, NULL, NULL);
}
