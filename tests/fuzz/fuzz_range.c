/* fuzz_range: the Range header of output downloads (svc/http/outputs.c,
 * http_range_parse). Input: 8 bytes of file size (little endian, sign bit
 * dropped), then the header value. Checks the promise of range.h: a range
 * given is inside the file and not reversed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = u << 8 | data[i];
    int64_t file_size = (int64_t)(u & INT64_MAX);
    char *h = malloc(size - 8 + 1);
    if (!h)
        return 0;
    memcpy(h, data + 8, size - 8);
    h[size - 8] = '\0';
    int64_t from = -7, to = -7;
    int r = http_range_parse(h, file_size, &from, &to);
    if (r < -1 || r > 1)
        abort();
    if (r == 1 && !(from >= 0 && from <= to && to < file_size))
        abort();
    /* No header at all is never a range. */
    if (http_range_parse(NULL, file_size, &from, &to) != 0)
        abort();
    free(h);
    return 0;
}
