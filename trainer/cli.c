/* The option-table engine (cli.h): parsing, --help and the JSON form of any
 * command's options. */
#include "cli.h"
#include "data.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const cli_opt *cli_find(const cli_command *cmd, const char *name)
{
    for (size_t i = 0; i < cmd->nopts; i++)
        if (strcmp(cmd->opts[i].name, name) == 0) return &cmd->opts[i];
    return NULL;
}

/* The index of v among "a|b|c", or -1. */
static int choice_index(const char *choices, const char *v)
{
    const size_t n = strlen(v);
    int i = 0;
    for (const char *p = choices;; i++) {
        const char *bar = strchr(p, '|');
        const size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return i;
        if (!bar) return -1;
        p = bar + 1;
    }
}

/* The name of the choice whose enum value is v ("?" when none is). */
static void choice_name(const cli_opt *o, int v, char *buf, size_t n)
{
    const char *p = o->choices;
    for (int i = 0; p; i++) {
        const char *bar = strchr(p, '|');
        const size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if ((o->values ? o->values[i] : i) == v) {
            snprintf(buf, n, "%.*s", (int)len, p);
            return;
        }
        p = bar ? bar + 1 : NULL;
    }
    snprintf(buf, n, "?");
}

int cli_set(const cli_opt *o, void *opts, const char *raw, const char *where, char *err, size_t n)
{
    void *field = (char *)opts + o->off;
    char val[300]; /* the value as error lines show it (escaped, cut) */
    data_escape(raw, 200, val, sizeof val);
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case CLI_FLAG:
        *(int *)field = 1;
        return 0;
    case CLI_INT:
    case CLI_LONG: {
        const long long v = strtoll(raw, &end, 10);
        /* compared as integers: as doubles, 2^53 + 1 would pass a bound of 2^53 */
        if (errno || end == raw || *end || v < (long long)o->lo || v > (long long)o->hi) {
            snprintf(err, n, "%s: --%s: expected a whole number in [%.0f, %.0f], got '%s'", where,
                     o->name, o->lo, o->hi, val);
            return 2;
        }
        if (o->type == CLI_INT)
            *(int *)field = (int)v;
        else
            *(long *)field = (long)v;
        return 0;
    }
    case CLI_DOUBLE: {
        const double v = strtod(raw, &end);
        if (errno || end == raw || *end || !isfinite(v) || v < o->lo || v > o->hi) {
            snprintf(err, n, "%s: --%s: expected a number in [%g, %g], got '%s'", where, o->name,
                     o->lo, o->hi, val);
            return 2;
        }
        *(double *)field = v;
        return 0;
    }
    case CLI_CHOICE: {
        const int i = choice_index(o->choices, raw);
        if (i < 0) {
            snprintf(err, n, "%s: --%s: expected one of %s, got '%s'", where, o->name, o->choices,
                     val);
            return 2;
        }
        *(int *)field = o->values ? o->values[i] : i;
        return 0;
    }
    case CLI_CUSTOM: {
        char why[200];
        if (o->custom->parse(raw, field, why, sizeof why) != 0) {
            snprintf(err, n, "%s: --%s: %s; got '%s'", where, o->name, why, val);
            return 2;
        }
        return 0;
    }
    case CLI_STR:
        if (strlen(raw) >= o->size) {
            snprintf(err, n, "%s: --%s: value longer than %zu bytes", where, o->name, o->size - 1);
            return 2;
        }
        strcpy(field, raw);
        return 0;
    }
    return 2;
}

/* The fewest significant digits (15 to 17) that strtod reads back as v. */
static void shortest_double(double v, char *buf, size_t n)
{
    for (int digits = 15; digits < 17; digits++) {
        snprintf(buf, n, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) return;
    }
    snprintf(buf, n, "%.17g", v);
}

void cli_text(const cli_opt *o, const void *opts, char *buf, size_t n)
{
    const void *field = (const char *)opts + o->off;
    switch (o->type) {
    case CLI_FLAG:
        snprintf(buf, n, "%s", *(const int *)field ? "on" : "off");
        break;
    case CLI_INT:
        snprintf(buf, n, "%d", *(const int *)field);
        break;
    case CLI_LONG:
        snprintf(buf, n, "%ld", *(const long *)field);
        break;
    case CLI_DOUBLE:
        snprintf(buf, n, "%.17g", *(const double *)field);
        break;
    case CLI_CHOICE:
        choice_name(o, *(const int *)field, buf, n);
        break;
    case CLI_CUSTOM:
        o->custom->format(field, buf, n);
        break;
    case CLI_STR:
        snprintf(buf, n, "%s", (const char *)field);
        break;
    }
}

/* ------------------------------------------------------------------ JSON */

char *cli_to_json(const cli_command *cmd, const void *opts)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    for (size_t i = 0; i < cmd->nopts; i++) {
        const cli_opt *o = &cmd->opts[i];
        const void *field = (const char *)opts + o->off;
        char text[1100];
        switch (o->type) {
        case CLI_FLAG:
            cJSON_AddBoolToObject(root, o->name, *(const int *)field);
            break;
        case CLI_INT:
        case CLI_LONG:
            /* the digits themselves: cJSON prints numbers with 15 significant
             * digits where that reads back within its tolerance, which
             * rounds a seed near 2^53 */
            cli_text(o, opts, text, sizeof text);
            cJSON_AddRawToObject(root, o->name, text);
            break;
        case CLI_DOUBLE:
            /* likewise: the shortest digits that read back exactly, where
             * cJSON's 15 digits may land one ulp off (0.58888888888888891) */
            if (isfinite(*(const double *)field)) {
                shortest_double(*(const double *)field, text, sizeof text);
                cJSON_AddRawToObject(root, o->name, text);
            } else {
                cJSON_AddNumberToObject(root, o->name, *(const double *)field);
            }
            break;
        case CLI_CHOICE:
        case CLI_CUSTOM:
        case CLI_STR:
            cli_text(o, opts, text, sizeof text);
            cJSON_AddStringToObject(root, o->name, text);
            break;
        }
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* One member of a JSON config: 0, or 2 with the line in err. */
static int json_member(const cli_command *cmd, void *opts, const cJSON *it, const char *where,
                       char *err, size_t n)
{
    const cli_opt *o = cli_find(cmd, it->string);
    if (!o) {
        snprintf(err, n, "%s: unknown key \"%s\"", where, it->string);
        return 2;
    }
    if (o->type == CLI_FLAG) {
        if (!cJSON_IsBool(it)) {
            snprintf(err, n, "%s: \"%s\" must be true or false", where, it->string);
            return 2;
        }
        *(int *)((char *)opts + o->off) = cJSON_IsTrue(it);
        return 0;
    }
    char buf[64];
    const char *val = NULL;
    const int numeric = o->type == CLI_INT || o->type == CLI_LONG || o->type == CLI_DOUBLE;
    if (cJSON_IsString(it)) {
        val = it->valuestring;
    } else if (cJSON_IsNumber(it) && numeric) {
        if (o->type == CLI_DOUBLE)
            snprintf(buf, sizeof buf, "%.17g", it->valuedouble);
        else if (it->valuedouble != floor(it->valuedouble))
            val = "(fraction)";
        else
            snprintf(buf, sizeof buf, "%.0f", it->valuedouble);
        if (!val) val = buf;
    } else {
        snprintf(err, n, "%s: \"%s\" has the wrong JSON type", where, it->string);
        return 2;
    }
    return cli_set(o, opts, val, where, err, n);
}

/* The first comma of json (outside strings) that only white space separates
 * from a closing } or ], or NULL. */
static const char *trailing_comma(const char *json)
{
    int in_string = 0;
    for (const char *p = json; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_string = 0;
            continue;
        }
        if (*p == '"') in_string = 1;
        if (*p != ',') continue;
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
        if (*q == '}' || *q == ']') return p;
    }
    return NULL;
}

/* Where JSON text went wrong, as people read it: "line L, column C: what
 * (near 'text')". */
static void json_problem(const char *json, const char *at, int parsed, char *out, size_t n)
{
    const char *comma = parsed ? NULL : trailing_comma(json);
    if (comma && (!at || comma < at)) at = comma;
    if (!at || at < json) {
        snprintf(out, n, "%s", parsed ? "not a JSON object" : "not valid JSON");
        return;
    }
    int line = 1, col = 1;
    for (const char *p = json; p < at && *p; p++) {
        if (*p == '\n')
            line++, col = 1;
        else if (((unsigned char)*p & 0xC0) != 0x80) /* a column per character */
            col++;
    }
    const char *what = parsed        ? "text after the JSON object"
                       : at == comma ? "trailing comma"
                       : !*at        ? "the text ends inside the object"
                                     : "not valid JSON";
    char near[64];
    data_escape(at, 20, near, sizeof near);
    snprintf(out, n, "line %d, column %d: %s%s%s%s", line, col, what, *at ? " (near '" : "", near,
             *at ? "')" : "");
}

int cli_from_json(const cli_command *cmd, void *opts, const char *json, const char *where,
                  char *err, size_t n)
{
    /* one JSON object and nothing after it but white space */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root || !cJSON_IsObject(root)) {
        char why[200];
        if (root) {
            snprintf(why, sizeof why, "not a JSON object");
        } else { /* a value followed by more text, or no value */
            const char *after = NULL;
            cJSON *head = cJSON_ParseWithOpts(json, &after, 0);
            while (head && after &&
                   (*after == ' ' || *after == '\t' || *after == '\n' || *after == '\r'))
                after++;
            json_problem(json, head ? after : cJSON_GetErrorPtr(), head != NULL, why, sizeof why);
            cJSON_Delete(head);
        }
        snprintf(err, n, "%s: %s", where, why);
        cJSON_Delete(root);
        return 2;
    }
    int rc = 0;
    for (const cJSON *it = root->child; it && !rc; it = it->next)
        rc = json_member(cmd, opts, it, where, err, n);
    cJSON_Delete(root);
    return rc;
}

/* A whole file of at most max bytes, read as every text input is
 * (data_read_file: devices refused, FIFOs waited for); NULL with the reason
 * in why. */
static char *read_text(const char *path, long max, char *why, size_t n)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > max) {
        snprintf(why, n, "%s: larger than %ld bytes", path, max);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    if (data_read_file(path, &buf, &len, why, n) != DATA_OK) return NULL;
    if (len > (size_t)max) {
        snprintf(why, n, "%s: larger than %ld bytes", path, max);
        free(buf);
        return NULL;
    }
    return buf;
}

/* --config FILE wherever it stands, before the rest of the command line. */
static int apply_config_files(const cli_command *cmd, void *opts, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: --config needs a file\n", cmd->prog);
                return 2;
            }
            path = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        }
        if (!path) continue;
        /* --config -: the JSON on standard input */
        const int stdin_path = strcmp(path, "-") == 0;
        if (stdin_path) path = "/dev/stdin";
        char why[600];
        char *text = read_text(path, 1 << 20, why, sizeof why);
        if (!text) {
            fprintf(stderr, "%s: --config: %s\n", cmd->prog, why);
            return 2;
        }
        char err[1200];
        const int rc = cli_from_json(cmd, opts, text, stdin_path ? "stdin" : path, err, sizeof err);
        free(text);
        if (rc) {
            fprintf(stderr, "%s: --config: %s\n", cmd->prog, err);
            return rc;
        }
    }
    return 0;
}

/* ----------------------------------------------------------- parsing */

int cli_parse(const cli_command *cmd, void *opts, int argc, char **argv, const char **pos,
              int max_pos, int *npos)
{
    if (npos) *npos = 0;
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_help(cmd, opts, stdout);
            return 1;
        }
    if (cmd->config_file) {
        const int rc = apply_config_files(cmd, opts, argc, argv);
        if (rc) return rc;
    }
    unsigned char seen[128] = {0}; /* required options given */
    int print_config = 0, only_args = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_args && strcmp(a, "--") == 0) { /* what follows are arguments, not options */
            only_args = 1;
            continue;
        }
        if (only_args || strncmp(a, "--", 2) != 0) {
            if (!pos || !npos || *npos >= max_pos) {
                char shown[300];
                fprintf(stderr,
                        "%s: unexpected argument '%s' (options start with --; see --help)\n",
                        cmd->prog, data_escape(a, 200, shown, sizeof shown));
                return 2;
            }
            pos[(*npos)++] = a;
            continue;
        }
        char name[64];
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, a + 2, len);
        name[len] = '\0';
        if (cmd->config_file && strcmp(name, "config") == 0) {
            if (!eq) i++;
            continue;
        }
        if (cmd->config_file && strcmp(a, "--print-config") == 0) {
            print_config = 1;
            continue;
        }
        const cli_opt *o = cli_find(cmd, name);
        if (!o) {
            char shown[200];
            fprintf(stderr, "%s: unknown option '--%s' (see --help)\n", cmd->prog,
                    data_escape(name, 64, shown, sizeof shown));
            return 2;
        }
        const char *val = "";
        if (o->type == CLI_FLAG) {
            if (eq) {
                fprintf(stderr, "%s: --%s takes no value\n", cmd->prog, name);
                return 2;
            }
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "%s: --%s needs a value\n", cmd->prog, name);
            return 2;
        }
        char err[1200];
        const int rc = cli_set(o, opts, val, cmd->prog, err, sizeof err);
        if (rc) {
            fprintf(stderr, "%s\n", err);
            return rc;
        }
        const size_t k = (size_t)(o - cmd->opts);
        if (k < sizeof seen) seen[k] = 1;
    }
    for (size_t k = 0; k < cmd->nopts && k < sizeof seen; k++)
        if (cmd->opts[k].required && !seen[k]) {
            fprintf(stderr, "%s: --%s %s is required\n", cmd->prog, cmd->opts[k].name,
                    cmd->opts[k].arg ? cmd->opts[k].arg : "N");
            return 2;
        }
    if (print_config) { /* the effective configuration, as --config reads it */
        char *json = cli_to_json(cmd, opts);
        cJSON *o = json ? cJSON_Parse(json) : NULL;
        char *pretty = o ? cJSON_Print(o) : NULL;
        if (pretty) printf("%s\n", pretty);
        free(pretty), free(json);
        cJSON_Delete(o);
        return pretty ? 1 : 2;
    }
    return 0;
}

/* ------------------------------------------------------------------ help */

void cli_help(const cli_command *cmd, const void *defaults, FILE *f)
{
    if (cmd->defaults) defaults = cmd->defaults;
    fprintf(f, "usage: %s", cmd->prog);
    for (size_t i = 0; i < cmd->nopts; i++)
        if (cmd->opts[i].required)
            fprintf(f, " --%s %s", cmd->opts[i].name, cmd->opts[i].arg ? cmd->opts[i].arg : "N");
    fprintf(f, "%s [options]%s%s\n", cmd->config_file ? " [--config FILE]" : "",
            cmd->positional ? " " : "", cmd->positional ? cmd->positional : "");
    if (cmd->about) fprintf(f, "%s\n", cmd->about);
    fprintf(f, "\nOptions%s:\n",
            cmd->config_file
                ? " (a JSON config file takes the same names as keys; the command line wins)"
                : "");
    for (size_t i = 0; i < cmd->nopts; i++) {
        const cli_opt *o = &cmd->opts[i];
        char def[80] = "";
        if (o->type != CLI_FLAG && !o->required) {
            cli_text(o, defaults, def, sizeof def);
            if (o->type == CLI_DOUBLE) { /* the short form: 0.005, not 0.0050000000000000001 */
                double v;
                memcpy(&v, (const char *)defaults + o->off, sizeof v);
                snprintf(def, sizeof def, "%g", v);
            }
        }
        char lhs[64];
        snprintf(lhs, sizeof lhs, "%s%s%s", o->name,
                 o->type == CLI_FLAG || o->type == CLI_CHOICE || !o->arg ? "" : " ",
                 o->type == CLI_FLAG || o->type == CLI_CHOICE || !o->arg ? "" : o->arg);
        fprintf(f, "  --%-18s %s%s%s%s%s%s\n", lhs, o->help, o->choices ? ": " : "",
                o->choices ? o->choices : "", *def ? " [" : "", def, *def ? "]" : "");
    }
    if (cmd->config_file) {
        fprintf(f, "  --%-18s %s\n", "config FILE",
                "JSON file of options (- : standard input), applied before the command line");
        fprintf(f, "  --%-18s %s\n", "print-config",
                "print the effective configuration as JSON (a --config file) and exit");
    }
}

/* ------------------------------------------------- man page, completion */

/* Text for roff: a backslash doubled, a leading dot or quote escaped. */
static void roff(FILE *f, const char *s)
{
    if (*s == '.' || *s == '\'') fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else if (*s == '\n') {
            fputc('\n', f);
            if (s[1] == '.' || s[1] == '\'') fputs("\\&", f);
        } else
            fputc(*s, f);
    }
}

void cli_man(const cli_command *cmd, FILE *f)
{
    fputs(".SS ", f);
    roff(f, cmd->prog);
    fputs("\n.B ", f);
    roff(f, cmd->prog);
    for (size_t i = 0; i < cmd->nopts; i++)
        if (cmd->opts[i].required) {
            fprintf(f, " \\-\\-%s ", cmd->opts[i].name);
            roff(f, cmd->opts[i].arg ? cmd->opts[i].arg : "N");
        }
    fputs(cmd->config_file ? " [\\-\\-config FILE]" : "", f);
    fputs(" [options]", f);
    if (cmd->positional) {
        fputc(' ', f);
        roff(f, cmd->positional);
    }
    fputs("\n.PP\n", f);
    if (cmd->about) {
        roff(f, cmd->about);
        fputs("\n", f);
    }
    for (size_t i = 0; i < cmd->nopts; i++) {
        const cli_opt *o = &cmd->opts[i];
        fprintf(f, ".TP\n.B \\-\\-%s", o->name);
        if (o->type != CLI_FLAG) {
            fputc(' ', f);
            roff(f, o->type == CLI_CHOICE ? o->choices
                    : o->arg              ? o->arg
                    : o->type == CLI_STR  ? "TEXT"
                                          : "N");
        }
        fputc('\n', f);
        roff(f, o->help);
        char def[300] = "";
        if (cmd->defaults && o->type != CLI_FLAG && !o->required)
            cli_text(o, cmd->defaults, def, sizeof def);
        if (o->type == CLI_DOUBLE && def[0]) {
            double v;
            memcpy(&v, (const char *)cmd->defaults + o->off, sizeof v);
            snprintf(def, sizeof def, "%g", v);
        }
        if (def[0]) {
            fputs(" (default ", f);
            roff(f, def);
            fputc(')', f);
        }
        fputc('\n', f);
    }
    if (cmd->config_file)
        fputs(".TP\n.B \\-\\-config FILE\nJSON file of options (keys named as the long options; "
              "\\- : standard input), applied before the command line\n"
              ".TP\n.B \\-\\-print\\-config\nprint the effective configuration as JSON (a "
              "\\-\\-config file) and exit\n",
              f);
}

const char *cli_value_kind(const cli_opt *o)
{
    if (o->type == CLI_FLAG) return "";
    if (o->arg && (strstr(o->arg, "FILE") || strstr(o->arg, ".svg") || strstr(o->arg, ".jsonl")))
        return "FILE";
    if (o->arg && strstr(o->arg, "DIR")) return "DIR";
    return "";
}

void cli_words(const cli_command *cmd, FILE *f)
{
    for (size_t i = 0; i < cmd->nopts; i++) fprintf(f, "%s--%s", i ? " " : "", cmd->opts[i].name);
    if (cmd->config_file) fprintf(f, "%s--config --print-config", cmd->nopts ? " " : "");
    fprintf(f, "%s--help", cmd->nopts || cmd->config_file ? " " : "");
}
