/* fuzz_tus: the tus headers that carry data (svc/uploads/tus_meta.c,
 * svc/http/tus.c): input lines are, in order, Upload-Metadata,
 * Upload-Checksum, Upload-Length and Upload-Offset. The metadata's pairs
 * then go through tus_options_from_meta and upload_options_check, as the
 * upload's last byte does. Checks: parsed keys are unique and within caps,
 * decoded values NUL-terminated at their length, tus_meta_get finds each,
 * a checksum digest fits its buffer, an accepted integer is digits only. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/tus.h"
#include "http/upload.h"
#include "uploads/tus_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void metadata(const char *h)
{
    struct tus_meta m;
    char err[256] = "";
    memset(&m, 0, sizeof(m));
    if (tus_meta_parse(h, &m, err, sizeof(err)) < 0) {
        if (!err[0] || m.n != 0)
            abort();
        tus_meta_clear(&m);
        return;
    }
    if (m.n > TUS_META_PAIRS_MAX)
        abort();
    for (size_t i = 0; i < m.n; i++) {
        size_t len = 0;
        if (strlen(m.pairs[i].key) == 0 || strlen(m.pairs[i].key) > TUS_META_KEY_MAX)
            abort();
        if (!m.pairs[i].value || m.pairs[i].value[m.pairs[i].value_len] != '\0' ||
            m.pairs[i].value_len > TUS_META_VALUE_MAX)
            abort();
        for (size_t j = i + 1; j < m.n; j++)
            if (strcmp(m.pairs[i].key, m.pairs[j].key) == 0)
                abort();
        if (tus_meta_get(&m, m.pairs[i].key, &len) != m.pairs[i].value || len != m.pairs[i].value_len)
            abort();
    }
    struct upload_options o;
    struct api_error e;
    memset(&e, 0, sizeof(e));
    if (tus_options_from_meta(&m, &o, &e) == 0) {
        char *outputs_json = NULL;
        if (upload_options_check(&o, &outputs_json, &e) != 0 && (!e.code || !e.message[0]))
            abort();
        free(outputs_json);
        upload_options_clear(&o);
    } else if (!e.code || !e.message[0]) {
        abort();
    }
    tus_meta_clear(&m);
}

static void checksum(const char *h)
{
    char algo[16];
    unsigned char digest[TUS_DIGEST_MAX];
    size_t dlen = 0;
    char err[256] = "";
    int r = tus_checksum_parse(h, algo, digest, &dlen, err, sizeof(err));
    if (r == 0) {
        if (dlen == 0 || dlen > TUS_DIGEST_MAX || !memchr(algo, '\0', sizeof(algo)))
            abort();
        struct tus_digest *d = NULL;
        if (tus_digest_new(algo, &d) == 0) {
            tus_digest_update(d, h, strlen(h));
            int m = tus_digest_matches(d, digest, dlen);
            if (m < -1 || m > 1)
                abort();
        }
        tus_digest_free(&d);
    } else if ((r != -1 && r != -2) || !err[0]) {
        abort();
    }
}

static void integer(const char *h)
{
    int64_t v = -1;
    if (tus_header_i64(h, &v) == 0) {
        if (v < 0 || !*h)
            abort();
        for (const char *p = h; *p; p++)
            if (*p < '0' || *p > '9')
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > TUS_META_HEADER_MAX + 1024)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *lines[4] = {"", "", "", ""};
    char *p = buf;
    for (int i = 0; i < 4 && p; i++) {
        lines[i] = p;
        char *nl = strchr(p, '\n');
        if (nl)
            *nl++ = '\0';
        p = nl;
    }
    metadata(lines[0]);
    checksum(lines[1]);
    integer(lines[2]);
    integer(lines[3]);
    free(buf);
    return 0;
}
