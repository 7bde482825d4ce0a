/* seqpar: distributed data-parallel trainer for recurrent sequence models. */
#include <errno.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "data.h"
#include "progress.h"
#include "trainer.h"

static void usage(FILE *f)
{
    fprintf(f,
            "seqpar %s: data-parallel training of recurrent sequence models\n\n"
            "usage: seqpar COMMAND [options]   (mpirun -np N seqpar train … for N ranks)\n\n"
            "commands:\n",
            SEQPAR_VERSION);
    for (int i = 0; i < seqpar_ncommands; i++)
        fprintf(f, "  %-14s %s\n", seqpar_commands[i].name, seqpar_commands[i].summary);
    fprintf(f, "\n'seqpar COMMAND --help' describes each command's options; `man seqpar` all "
               "of them.\n");
}

/* Output lost to a full disk or a failed device must not look like
 * success: at exit stdout is flushed and closed, and a failure is one line
 * on stderr and exit status 1, whatever the command (as GNU tools'
 * close_stdout). A closed stdout with nothing to write, and a reader that
 * went away (EPIPE, when SIGPIPE is ignored), are not errors. */
static void close_stdout(void)
{
    const int pending = __fpending(stdout) > 0, before = ferror(stdout);
    errno = 0;
    const int failed = fclose(stdout) != 0;
    const int e = errno;
    if (e == EPIPE || !(before || (failed && (pending || e != EBADF)))) return;
    fprintf(stderr, "seqpar: write error on standard output%s%s\n", e ? ": " : "",
            e ? strerror(e) : "");
    fflush(stderr);
    _exit(1);
}

/* A text input that is a FIFO with nothing written yet (data.h): said once,
 * instead of a silent wait. */
static void fifo_notice(const char *path)
{
    char shown[300];
    fprintf(stderr,
            "seqpar: waiting for %s to be written (a FIFO or pipe with no data for %d s; "
            "Ctrl-C ends the wait)\n",
            data_escape(path, 200, shown, sizeof shown), DATA_FIFO_NOTICE_S);
}

int main(int argc, char **argv)
{
    atexit(close_stdout);
    data_set_fifo_notice(fifo_notice);
    progress_fetch_install(); /* a corpus download shows its progress on a terminal */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("seqpar %s\n", SEQPAR_VERSION);
        return 0;
    }
    /* the manual, written from the option tables at build time */
    if (strcmp(cmd, "--man") == 0) {
        manual_man(stdout);
        return 0;
    }
    if (strcmp(cmd, "--bash-completion") == 0) {
        manual_bash_completion(stdout);
        return 0;
    }
    for (int i = 0; i < seqpar_ncommands; i++)
        if (strcmp(cmd, seqpar_commands[i].name) == 0)
            return seqpar_commands[i].fn(argc - 2, argv + 2);
    char shown[200];
    fprintf(stderr, "seqpar: unknown command '%s' (see seqpar --help)\n",
            data_escape(cmd, 64, shown, sizeof shown));
    return 2;
}
