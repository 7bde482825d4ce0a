/* The language-model text reader (data_stream_load, data/corpus.c) on any
 * file, as characters or as words: the first byte picks the tokens, the
 * vocabulary cut-off and a limit on tokens, the rest is the file. */
#include <stdint.h>
#include <stdlib.h>

#include "data.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t opt = data[0];
    const char *path = fuzz_write_file(data + 1, size - 1);
    if (!path) return 0;
    data_stream_opts o = {.dataset = path,
                          .tokens = (opt & 1) ? DATA_TOKENS_WORD : DATA_TOKENS_CHAR,
                          .min_freq = (opt >> 1) & 3,
                          .max_tokens = (opt & 8) ? 5 : 0};
    data_stream s;
    char err[512] = "";
    if (data_stream_load(&s, &o, err, sizeof err) == DATA_OK) {
        for (long i = 0; i < s.n; i++)
            if (s.ids[i] < 0 || s.ids[i] >= s.vocab.size) abort(); /* ids the model can embed */
        data_stream_free(&s);
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
