/* seqpar's manual: the man page seqpar(1) and a bash completion script,
 * written from the commands' option tables (cli.h), so that neither can
 * drift from what --help prints and the parser takes. The build runs
 * `seqpar --man` and `seqpar --bash-completion`; cmake --install puts the
 * results in place. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "trainer.h"

static const char HEAD[] =
    ".TH SEQPAR 1 \"\" \"seqpar %s\" \"User Commands\"\n"
    ".SH NAME\n"
    "seqpar \\- data-parallel training of recurrent sequence models\n"
    ".SH SYNOPSIS\n"
    ".B seqpar\n"
    ".I COMMAND\n"
    "[options]\n"
    ".br\n"
    ".B mpirun \\-np\n"
    ".I N\n"
    ".B seqpar train\n"
    "[options]\n"
    ".SH DESCRIPTION\n"
    "seqpar trains the RNN, GRU and LSTM encoder\\(endecoder and the RNN language model of\n"
    ".I Dive into Deep Learning\n"
    "data-parallel over MPI ranks: every rank holds a replica, ranks split each global batch,\n"
    "sum their gradients with one allreduce, clip by the global norm and apply the same update,\n"
    "so N ranks follow the trajectory of one process with the same global batch. Checkpoints\n"
    "are HDF5 files with PyTorch state_dict names; a run resumes from them exactly, at any\n"
    "world size. Metrics stream over ZeroMQ to\n"
    ".BR \"seqpar monitor\" ,\n"
    "which serves a live dashboard and Prometheus metrics.\n"
    ".SH COMMANDS\n";

static const char CKPT[] =
    ".SS seqpar ckpt\n"
    ".B seqpar ckpt info\n"
    "FILE |\n"
    ".B verify\n"
    "FILE |\n"
    ".B list\n"
    "DIR |\n"
    ".B diff\n"
    "A B [\\-\\-tolerance X]\n"
    ".PP\n"
    ".B info\n"
    "says what a checkpoint holds;\n"
    ".B verify\n"
    "reads every dataset (Fletcher\\-32 checksums) and checks the layout;\n"
    ".B list\n"
    "shows a directory's checkpoints, newest first, with their status, and where\n"
    ".B \\-\\-resume auto\n"
    "would continue;\n"
    ".B diff\n"
    "compares two checkpoints of one model:\n";

static const char TAIL[] =
    ".SH EXIT STATUS\n"
    ".TP\n.B 0\ndone.\n"
    ".TP\n.B 1\na runtime failure (a checkpoint that cannot be written, a loss or gradient that is "
    "not finite, output that cannot be written).\n"
    ".TP\n.B 2\nbad options or bad input: one line names the option, or the file and line.\n"
    ".TP\n.B 75\n.B seqpar train\nstopped by a signal (\\-\\-stop\\-signals) after writing a "
    "checkpoint of its last step: resumable with \\-\\-resume auto.\n"
    ".SH ENVIRONMENT\n"
    ".TP\n.B SEQPAR_DATA\nwhere corpora are found (after \\-\\-data\\-dir; then ~/.cache/seqpar).\n"
    ".TP\n.B OPENBLAS_CORETYPE\nthe OpenBLAS kernel (SkylakeX on AVX\\-512 CPUs; seqpar warns "
    "when the one in use is slower than the CPU allows).\n"
    ".TP\n.B SEQPAR_MEM_AVAILABLE_MB\nthe node's memory to count on (MB) for the check that a "
    "model fits.\n"
    ".SH SEE ALSO\n"
    ".BR mpirun (1),\n"
    ".BR h5dump (1);\n"
    "README.md and DESIGN.md in /usr/share/doc/seqpar (or the install prefix's share/doc).\n";

void manual_man(FILE *f)
{
    fprintf(f, HEAD, SEQPAR_VERSION);
    for (int i = 0; i < seqpar_ncommands; i++) {
        const seqpar_command *c = &seqpar_commands[i];
        if (c->cli) {
            cli_man(c->cli, f);
            continue;
        }
        fputs(CKPT, f);
        cli_man(&ckpt_diff_command, f);
    }
    fputs(TAIL, f);
}

/* The case arm of one command: its options, and what each option's value
 * completes to (choices, files, directories). */
static void complete_command(FILE *f, const char *name, const cli_command *cmd)
{
    fprintf(f, "    %s)\n        case \"$prev\" in\n", name);
    for (size_t i = 0; i < cmd->nopts; i++) {
        const cli_opt *o = &cmd->opts[i];
        const char *kind = cli_value_kind(o);
        if (o->type == CLI_CHOICE) {
            char words[256];
            snprintf(words, sizeof words, "%s", o->choices);
            for (char *p = words; *p; p++)
                if (*p == '|') *p = ' ';
            fprintf(f,
                    "            --%s) COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return ;;\n",
                    o->name, words);
        } else if (!strcmp(kind, "FILE") || !strcmp(kind, "DIR")) {
            fprintf(f, "            --%s) COMPREPLY=($(compgen -%c -- \"$cur\")); return ;;\n",
                    o->name, kind[0] == 'D' ? 'd' : 'f');
        }
    }
    if (cmd->config_file)
        fputs("            --config) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", f);
    fputs("        esac\n        opts=\"", f);
    cli_words(cmd, f);
    fputs("\" ;;\n", f);
}

void manual_bash_completion(FILE *f)
{
    fputs("# bash completion for seqpar (written by `seqpar --bash-completion`)\n"
          "_seqpar() {\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} opts\n"
          "    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
          "        COMPREPLY=($(compgen -W \"",
          f);
    for (int i = 0; i < seqpar_ncommands; i++)
        fprintf(f, "%s%s", i ? " " : "", seqpar_commands[i].name);
    fputs(" --help --version\" -- \"$cur\"))\n"
          "        return\n"
          "    fi\n"
          "    case ${COMP_WORDS[1]} in\n",
          f);
    for (int i = 0; i < seqpar_ncommands; i++)
        if (seqpar_commands[i].cli)
            complete_command(f, seqpar_commands[i].name, seqpar_commands[i].cli);
    fputs("    ckpt)\n"
          "        if [ \"$COMP_CWORD\" -eq 2 ]; then\n"
          "            COMPREPLY=($(compgen -W \"info verify list diff --help\" -- \"$cur\"))\n"
          "            return\n"
          "        fi\n"
          "        [ \"${COMP_WORDS[2]}\" = list ] && { COMPREPLY=($(compgen -d -- \"$cur\")); "
          "return; }\n"
          "        opts=\"--tolerance\"\n"
          "        [[ $cur == -* ]] || { COMPREPLY=($(compgen -f -- \"$cur\")); return; } ;;\n"
          "    *) return ;;\n"
          "    esac\n"
          "    COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
          "}\n"
          "complete -o default -F _seqpar seqpar\n",
          f);
}
