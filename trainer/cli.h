/* trainer/cli.h: the command line of every subcommand, from one table each.
 *
 * A command declares its options once, as rows of cli_opt over the struct
 * its options fill; that table drives parsing (--name value, --name=value),
 * range and choice checks, --help, and for seqpar train the JSON config
 * (--config FILE) and the configuration stored in checkpoints. A choice is
 * turned into its enum value here, at parse time: the program compares
 * enums, never strings. Adding an option is one row.
 *
 * Errors are one line, "PROG: --NAME: what was expected, got 'VALUE'". */
#ifndef SEQPAR_TRAINER_CLI_H
#define SEQPAR_TRAINER_CLI_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    CLI_INT,    /* int, whole number in [lo, hi] */
    CLI_LONG,   /* long, whole number in [lo, hi] */
    CLI_DOUBLE, /* double, finite number in [lo, hi] */
    CLI_STR,    /* char[size], free text */
    CLI_FLAG,   /* int, set to 1 by --name (JSON: true/false) */
    CLI_CHOICE, /* int: the enum value of one of `choices` */
    CLI_CUSTOM, /* any field, read and written by `custom` */
} cli_type;

/* A field with a syntax of its own (e.g. --bptt full|K|random[:K]). */
typedef struct cli_custom {
    /* text → field: 0, or -1 with what was expected in err */
    int (*parse)(const char *text, void *field, char *err, size_t n);
    void (*format)(const void *field, char *buf, size_t n);
} cli_custom;

typedef struct cli_opt {
    const char *name; /* without the dashes */
    cli_type type;
    size_t off, size; /* the field in the options struct */
    double lo, hi;    /* numbers: the range */
    /* CLI_CHOICE: "a|b|c"; values[i] is the enum value of the i-th (NULL: i) */
    const char *choices;
    const int *values;
    const cli_custom *custom;
    const char *arg;  /* what the value is, for --help ("N", "FILE"); NULL: a number */
    const char *help; /* one line */
    int required;     /* parsing fails without it */
} cli_opt;

/* Row helpers: S is the options struct of the table being written. */
#define CLI_FIELD(S, f) offsetof(S, f), sizeof(((S *)0)->f)

typedef struct cli_command {
    const char *prog;       /* "seqpar translate" */
    const void *defaults;   /* the options struct as the command starts from */
    const char *positional; /* "FILE", "A B" in the usage line; NULL: none taken */
    const char *about;      /* what the command does, for --help (may be NULL) */
    const cli_opt *opts;
    size_t nopts;
    int config_file; /* --config FILE (JSON) is read before the command line */
} cli_command;

/* Parses argv into opts (already holding the defaults): --config FILE (or
 * - for stdin) first when the command takes one, then every option in
 * order. Arguments that are not options go to pos[0..*npos) (at most
 * max_pos; pos NULL: none taken). Returns 0; 1 when --help, or the
 * effective configuration for --print-config, was printed (stdout); 2 after
 * one line on stderr naming the option. */
int cli_parse(const cli_command *cmd, void *opts, int argc, char **argv, const char **pos,
              int max_pos, int *npos);
void cli_help(const cli_command *cmd, const void *defaults, FILE *f);

/* One option from text (err gets "WHERE: --NAME: …"): 0 or 2. */
int cli_set(const cli_opt *o, void *opts, const char *val, const char *where, char *err, size_t n);
/* An option's value as text (a choice's name, a flag's on/off). */
void cli_text(const cli_opt *o, const void *opts, char *buf, size_t n);
const cli_opt *cli_find(const cli_command *cmd, const char *name);

/* The whole table as one JSON object (malloc'd; NULL when out of memory),
 * keys in table order; and back, refusing unknown keys, wrong types and
 * text after the object: 0, or 2 with one line in err naming `where`. */
char *cli_to_json(const cli_command *cmd, const void *opts);
int cli_from_json(const cli_command *cmd, void *opts, const char *json, const char *where,
                  char *err, size_t n);

/* The command as a section of a man page (roff): its synopsis, what it does,
 * every option with its default. */
void cli_man(const cli_command *cmd, FILE *f);
/* The words a shell completes after the command: --NAME for every option
 * (space separated); and for an option its choices ("gru lstm rnn"), "FILE"
 * or "DIR" when it takes a path, "" otherwise. */
void cli_words(const cli_command *cmd, FILE *f);
const char *cli_value_kind(const cli_opt *o);

#endif
