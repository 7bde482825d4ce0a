/* The JSON configuration reader (config_from_json, trainer/config.c), as
 * `seqpar train --config FILE` and every checkpoint's /config use it: any
 * bytes are applied or refused with a message. What it accepts must also
 * survive the trip the checkpoints make: written back (config_to_json) and
 * read again, it is the same configuration. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = fuzz_string(data, size);
    if (!json) return 0;
    train_config c;
    config_defaults(&c);
    char err[512] = "";
    if (config_from_json(&c, json, "fuzz", err, sizeof err) == 0) {
        char why[512];
        config_validate(&c, 1 + (int)(size % 3), why, sizeof why);
        char *again = config_to_json(&c);
        if (again) {
            train_config d;
            config_defaults(&d);
            if (config_from_json(&d, again, "written back", err, sizeof err) != 0) {
                fprintf(stderr, "config_to_json wrote what config_from_json refuses: %s\n", err);
                abort();
            }
            if (config_difference(&c, &d, NULL, NULL, "read", "read again", why, sizeof why)) {
                fprintf(stderr, "the configuration changed on its way back: %s\n", why);
                abort();
            }
            free(again);
        }
    } else if (!err[0]) {
        abort(); /* a refusal names its reason */
    }
    free(json);
    return 0;
}
