/*
 * parser.y - the grammar of the model language (frontend/LANGUAGE.md).
 *
 * A pure bison parser over the reentrant flex scanner in lexer.l; every
 * action is one constructor call from ast.c, nodes come from the parse arena.
 *
 * Statements need no separator, so an expression statement followed by a line
 * that starts with `(`, `[` or `-` is ambiguous (`a = b` then `(c)`, or
 * `a = b(c)`?).  Precedence settles it the way most such languages do: the
 * expression goes on (the rules that end a statement or a `default` have the
 * lowest precedence, STMT_END); write `;` to end it.
 *
 * Errors: syntax errors are reported with bison's detailed messages; `error`
 * rules resynchronise at the next statement (in blocks and model bodies) or at
 * the next item (at the top level), so one run reports every error it can.
 */
%define api.pure full
%define api.prefix {fe_yy}
%define parse.error detailed
%define parse.lac full
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {FeParse *ps}

%code requires {
#include "frontend/ast.h"
#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif
}

%union {
  char *s;
  struct { int64_t i; double f; const char *s; } num;
  AstNode *node;
  AstList *list;
}

%code {
#include <limits.h>
#include <string.h>

#include "frontend/lexer.h"

/* Bounds the parser's stack, and with it the nesting of the tree, so that the
 * recursive elaborator cannot run out of C stack. */
#define YYMAXDEPTH 2000

static void fe_yyerror(YYLTYPE *loc, yyscan_t scanner, FeParse *ps, const char *msg);
#define L(l) ast_loc((l).first_line, (l).first_column)
}

%token YYEOF 0 "end of file"
%token <s> IDENT "identifier"
%token <num> INT "integer" FLOAT "number"
%token <s> STRING "string"
%token KW_FN "'fn'" KW_MODEL "'model'" KW_ENTRY "'entry'" KW_CONFIG "'config'" KW_PARAM "'param'"
%token KW_DEFAULT "'default'" KW_RETURN "'return'" KW_IF "'if'" KW_ELSE "'else'" KW_FOR "'for'"
%token KW_IN "'in'" KW_ASSERT "'assert'" KW_TRUE "'true'" KW_FALSE "'false'" KW_NONE "'none'"
%token KW_AND "'and'" KW_OR "'or'" KW_NOT "'not'"
%token POW "'**'" FLOORDIV "'//'" EQ "'=='" NE "'!='" LE "'<='" GE "'>='" DOTDOT "'..'"

%precedence STMT_END KW_DEFAULT
%left KW_OR
%left KW_AND
%precedence KW_NOT
%nonassoc EQ NE '<' LE '>' GE
%left '+' '-'
%left '*' '/' FLOORDIV '%'
%precedence UMINUS
%right POW
%precedence '(' '['

%type <node> file item fn_def model_def model_item entry_def config_def param_decl input
%type <node> stmt if_stmt else_opt expr default_opt param_default arg kwarg target
%type <list> items model_items stmts block params param_list inputs input_list
%type <list> targets exprs exprs_opt args arg_list kwargs kwarg_list path ppath
%type <s> type_opt

%start file

%%

/* file := item* */
file: items                                   { $$ = ast_file(ps, L(@$), $1); }
    ;

/* items := (item | ';')* */
items: %empty                                 { $$ = ast_list(ps); }
     | items item                             { $$ = ast_push(ps, $1, $2); }
     | items ';'                              { $$ = $1; }
     ;

/* item := fn_def | model_def | config_def; on an error skip to the next item */
item: fn_def
    | model_def
    | config_def
    | error                                   { $$ = NULL; }
    ;

/* fn_def := 'fn' IDENT '(' params ')' block */
fn_def: KW_FN IDENT '(' params ')' block      { $$ = ast_fn(ps, L(@2), $2, $4, $6); }
      ;

/* params := [param_decl (',' param_decl)*] */
params: %empty                                { $$ = ast_list(ps); }
      | param_list
      ;
/* param_list := param_decl (',' param_decl)* */
param_list: param_decl                        { $$ = ast_list1(ps, $1); }
          | param_list ',' param_decl         { $$ = ast_push(ps, $1, $3); }
          ;

/* param_decl := IDENT [':' type] ['=' expr] */
param_decl: IDENT type_opt default_opt        { $$ = ast_param_decl(ps, L(@1), $1, $2, $3); }
          ;
/* type_opt := [':' IDENT]      (int, float, bool, str, tensor: checked when elaborating) */
type_opt: %empty                              { $$ = NULL; }
        | ':' IDENT                           { $$ = $2; }
        ;
/* default_opt := ['=' expr] */
default_opt: %empty                           { $$ = NULL; }
           | '=' expr                         { $$ = $2; }
           ;

/* model_def := 'model' IDENT '(' params ')' '{' model_item* '}' */
model_def: KW_MODEL IDENT '(' params ')' '{' model_items '}'
                                              { $$ = ast_model(ps, L(@2), $2, $4, $7); }
         ;
/* model_items := (model_item | ';')* */
model_items: %empty                           { $$ = ast_list(ps); }
           | model_items model_item           { $$ = ast_push(ps, $1, $2); }
           | model_items ';'                  { $$ = $1; }
           ;
/* model_item := stmt | fn_def | entry_def */
model_item: stmt
          | fn_def
          | entry_def
          ;

/* entry_def := 'entry' IDENT '(' [input (',' input)*] ')' block */
entry_def: KW_ENTRY IDENT '(' inputs ')' block
                                              { $$ = ast_entry(ps, L(@2), $2, $4, $6); }
         ;
/* inputs := [input_list] */
inputs: %empty                                { $$ = ast_list(ps); }
      | input_list
      ;
/* input_list := input (',' input)* */
input_list: input                             { $$ = ast_list1(ps, $1); }
          | input_list ',' input              { $$ = ast_push(ps, $1, $3); }
          ;
/* input := IDENT ':' DTYPE '[' [expr (',' expr)*] ']' */
input: IDENT ':' IDENT '[' exprs_opt ']'      { $$ = ast_input(ps, L(@1), $1, $3, $5); }
     ;

/* config_def := 'config' STRING '=' IDENT '(' [IDENT '=' expr (',' ...)*] ')' */
config_def: KW_CONFIG STRING '=' IDENT '(' kwargs ')'
                                              { $$ = ast_config(ps, L(@2), $2, $4, $6); }
          ;
/* kwargs := [kwarg_list] */
kwargs: %empty                                { $$ = ast_list(ps); }
      | kwarg_list
      ;
/* kwarg_list := kwarg (',' kwarg)* */
kwarg_list: kwarg                             { $$ = ast_list1(ps, $1); }
          | kwarg_list ',' kwarg              { $$ = ast_push(ps, $1, $3); }
          ;
/* kwarg := IDENT '=' expr */
kwarg: IDENT '=' expr                         { $$ = ast_kwarg(ps, L(@1), $1, $3); }
     ;

/* block := '{' stmt* '}' */
block: '{' stmts '}'                          { $$ = $2; }
     ;
/* stmts := (stmt | ';')* */
stmts: %empty                                 { $$ = ast_list(ps); }
     | stmts stmt                             { $$ = ast_push(ps, $1, $2); }
     | stmts ';'                              { $$ = $1; }
     ;

/* stmt := targets '=' expr | 'return' exprs | if_stmt | 'for' IDENT 'in' expr '..' expr block
 *       | 'assert' expr [',' expr] | expr ; on an error skip to the next statement */
stmt: targets '=' expr %prec STMT_END         { $$ = ast_assign(ps, L(@2), $1, $3); }
    | KW_RETURN exprs %prec STMT_END          { $$ = ast_return(ps, L(@1), $2); }
    | if_stmt
    | KW_FOR IDENT KW_IN expr DOTDOT expr block
                                              { $$ = ast_for(ps, L(@1), $2, $4, $6, $7); }
    | KW_ASSERT expr %prec STMT_END           { $$ = ast_assert(ps, L(@1), $2, NULL); }
    | KW_ASSERT expr ',' expr %prec STMT_END  { $$ = ast_assert(ps, L(@1), $2, $4); }
    | expr %prec STMT_END                     { $$ = ast_expr_stmt(ps, L(@1), $1); }
    | error                                   { $$ = NULL; }
    ;

/* targets := IDENT (',' IDENT)* */
targets: target                               { $$ = ast_list1(ps, $1); }
       | targets ',' target                   { $$ = ast_push(ps, $1, $3); }
       ;
/* target := IDENT */
target: IDENT                                 { $$ = ast_name(ps, L(@1), $1); }
      ;

/* if_stmt := 'if' expr block ['else' (block | if_stmt)] */
if_stmt: KW_IF expr block else_opt            { $$ = ast_if(ps, L(@1), $2, $3, $4); }
       ;
/* else_opt := ['else' (block | if_stmt)] */
else_opt: %empty                              { $$ = NULL; }
        | KW_ELSE block                       { $$ = ast_block(ps, L(@2), $2); }
        | KW_ELSE if_stmt                     { $$ = $2; }
        ;

/* exprs := expr (',' expr)* */
exprs: expr %prec STMT_END                    { $$ = ast_list1(ps, $1); }
     | exprs ',' expr %prec STMT_END          { $$ = ast_push(ps, $1, $3); }
     ;
/* exprs_opt := [exprs] */
exprs_opt: %empty                             { $$ = ast_list(ps); }
         | exprs
         ;

/* expr: operators by precedence (see the declarations above) */
expr: expr KW_OR expr                         { $$ = ast_binop(ps, L(@2), AST_OP_OR, $1, $3); }
    | expr KW_AND expr                        { $$ = ast_binop(ps, L(@2), AST_OP_AND, $1, $3); }
    | KW_NOT expr                             { $$ = ast_unop(ps, L(@1), AST_OP_NOT, $2); }
    | expr EQ expr                            { $$ = ast_binop(ps, L(@2), AST_OP_EQ, $1, $3); }
    | expr NE expr                            { $$ = ast_binop(ps, L(@2), AST_OP_NE, $1, $3); }
    | expr '<' expr                           { $$ = ast_binop(ps, L(@2), '<', $1, $3); }
    | expr LE expr                            { $$ = ast_binop(ps, L(@2), AST_OP_LE, $1, $3); }
    | expr '>' expr                           { $$ = ast_binop(ps, L(@2), '>', $1, $3); }
    | expr GE expr                            { $$ = ast_binop(ps, L(@2), AST_OP_GE, $1, $3); }
    | expr '+' expr                           { $$ = ast_binop(ps, L(@2), '+', $1, $3); }
    | expr '-' expr                           { $$ = ast_binop(ps, L(@2), '-', $1, $3); }
    | expr '*' expr                           { $$ = ast_binop(ps, L(@2), '*', $1, $3); }
    | expr '/' expr                           { $$ = ast_binop(ps, L(@2), '/', $1, $3); }
    | expr FLOORDIV expr                      { $$ = ast_binop(ps, L(@2), AST_OP_FLOORDIV, $1, $3); }
    | expr '%' expr                           { $$ = ast_binop(ps, L(@2), '%', $1, $3); }
    | '-' expr %prec UMINUS                   { $$ = ast_unop(ps, L(@1), '-', $2); }
    | expr POW expr                           { $$ = ast_binop(ps, L(@2), AST_OP_POW, $1, $3); }
    /* index := primary '[' expr ']' */
    | expr '[' expr ']'                       { $$ = ast_index(ps, L(@2), $1, $3); }
    /* primary := INT | FLOAT | STRING | 'true' | 'false' | 'none' | IDENT | '(' expr ')' */
    | INT                                     { $$ = ast_int(ps, L(@1), $1.i, $1.s); }
    | FLOAT                                   { $$ = ast_float(ps, L(@1), $1.f, $1.s); }
    | STRING                                  { $$ = ast_str(ps, L(@1), $1); }
    | KW_TRUE                                 { $$ = ast_bool(ps, L(@1), 1); }
    | KW_FALSE                                { $$ = ast_bool(ps, L(@1), 0); }
    | KW_NONE                                 { $$ = ast_none(ps, L(@1)); }
    | IDENT %prec STMT_END                    { $$ = ast_name(ps, L(@1), $1); }
    | '(' expr ')'                            { $$ = $2; }
    /* list := '[' [expr (',' expr)*] ']' */
    | '[' exprs_opt ']'                       { $$ = ast_list_expr(ps, L(@1), $2); }
    /* call := IDENT '(' args ')' */
    | IDENT '(' args ')'                      { $$ = ast_call(ps, L(@1), $1, NULL, $3); }
    /* scoped_call := IDENT '@' path '(' args ')' */
    | IDENT '@' path '(' args ')'             { $$ = ast_call(ps, L(@1), $1, $3, $5); }
    /* param_expr := 'param' path '[' expr (',' expr)* ']' ['default' expr] */
    | KW_PARAM ppath '[' expr ']' param_default
                                              { $$ = ast_param(ps, L(@1), $2, ast_list1(ps, $4), $6); }
    | KW_PARAM ppath '[' expr ',' exprs ']' param_default
                                              { $$ = ast_param(ps, L(@1), $2, ast_cons(ps, $4, $6), $8); }
    ;

/* param_default := ['default' expr]   (the expr extends as far as it can: lowest precedence) */
param_default: %empty                         { $$ = NULL; }
             | KW_DEFAULT expr                { $$ = $2; }
             ;

/* args := [arg (',' arg)*] ; arg := expr | IDENT '=' expr (named ones last: checked later) */
args: %empty                                  { $$ = ast_list(ps); }
    | arg_list
    ;
/* arg_list := arg (',' arg)* */
arg_list: arg                                 { $$ = ast_list1(ps, $1); }
        | arg_list ',' arg                    { $$ = ast_push(ps, $1, $3); }
        ;
/* arg := expr | kwarg */
arg: expr
   | kwarg
   ;

/* path := seg ('.' seg)* ; seg := IDENT | INT | '[' expr ']'   (blocks[i] is blocks.<i>) */
path: IDENT                                   { $$ = ast_list1(ps, ast_seg_name(ps, L(@1), $1)); }
    | INT                                     { $$ = ast_push_seg_number(ps, NULL, L(@1), $1.s); }
    | path '.' IDENT                          { $$ = ast_push(ps, $1, ast_seg_name(ps, L(@3), $3)); }
    | path '.' INT                            { $$ = ast_push_seg_number(ps, $1, L(@3), $3.s); }
    | path '.' FLOAT                          { $$ = ast_push_seg_number(ps, $1, L(@3), $3.s); }
    | path '[' expr ']'                       { $$ = ast_push(ps, $1, ast_seg_expr(ps, L(@3), $3)); }
    ;

/* A param's path: the bracket after it is the shape, so an index segment must
 * be followed by '.' (param blocks[i].weight[d]). */
ppath: IDENT                                  { $$ = ast_list1(ps, ast_seg_name(ps, L(@1), $1)); }
     | ppath '.' IDENT                        { $$ = ast_push(ps, $1, ast_seg_name(ps, L(@3), $3)); }
     | ppath '.' INT                          { $$ = ast_push_seg_number(ps, $1, L(@3), $3.s); }
     | ppath '.' FLOAT                        { $$ = ast_push_seg_number(ps, $1, L(@3), $3.s); }
     | ppath '[' expr ']' '.' IDENT           { $$ = ast_push(ps, ast_push(ps, $1, ast_seg_expr(ps, L(@3), $3)), ast_seg_name(ps, L(@6), $6)); }
     ;

%%

static void fe_yyerror(YYLTYPE *loc, yyscan_t scanner, FeParse *ps, const char *msg) {
  (void)scanner;
  if (strcmp(msg, "memory exhausted") == 0)
    msg = "the program nests too deeply";
  fe_error(ps->diag, ps->src, loc->first_line, loc->first_column, "%s", msg);
  ps->n_syntax_errors++;
}

/* Runs the scanner over src (flex copies the bytes, so src needs no NUL). */
static int scan_begin(const FeSource *src, FeParse *ps, FeLex *lx, yyscan_t *scanner) {
  *lx = (FeLex){.ps = ps, .line = 1, .col = 1};
  if (src->len > (size_t)INT_MAX / 2) {
    fe_error_at(ps->diag, src->file, "the source is too large");
    return -1;
  }
  if (fe_yylex_init_extra(lx, scanner) != 0) {
    fe_error_at(ps->diag, src->file, "cannot start the scanner");
    return -1;
  }
  fe_yy_scan_bytes(src->text ? src->text : "", (int)src->len, *scanner);
  return 0;
}

int fe_parse(const FeSource *src, Arena *arena, FeDiag *diag, AstNode **root) {
  FeParse ps = {.arena = arena, .src = src, .diag = diag};
  FeLex lx;
  yyscan_t scanner;
  *root = NULL;
  if (scan_begin(src, &ps, &lx, &scanner) != 0) return 1;
  int rc = fe_yyparse(scanner, &ps);
  fe_yylex_destroy(scanner);
  /* A parse that gave up without a message (it cannot happen, but never
   * report success without a tree). */
  if (rc != 0 && ps.n_syntax_errors == 0) {
    fe_error_at(diag, src->file, "the parser gave up");
    ps.n_syntax_errors = 1;
  }
  *root = ps.root;
  return ps.n_syntax_errors;
}

void fe_dump_tokens(const FeSource *src, FeDiag *diag, FILE *out) {
  Arena arena = {0};
  FeParse ps = {.arena = &arena, .src = src, .diag = diag};
  FeLex lx;
  yyscan_t scanner;
  if (scan_begin(src, &ps, &lx, &scanner) == 0) {
    for (;;) {
      YYSTYPE val;
      YYLTYPE loc;
      memset(&val, 0, sizeof val);
      int tok = fe_yylex(&val, &loc, scanner);
      yysymbol_kind_t kind = YYTRANSLATE(tok);
      fprintf(out, "%d:%d %s", loc.first_line, loc.first_column, yysymbol_name(kind));
      if (tok == IDENT || tok == STRING) fprintf(out, " %s", val.s);
      else if (tok == INT || tok == FLOAT) fprintf(out, " %s", val.num.s);
      fputc('\n', out);
      if (tok == FE_YYEOF) break;
    }
    fe_yylex_destroy(scanner);
  }
  arena_free(&arena);
}
