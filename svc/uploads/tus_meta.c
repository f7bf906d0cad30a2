/*
 * tus_meta.c - Upload-Metadata and Upload-Checksum parsing, and the running
 * body digest (OpenSSL EVP). See tus_meta.h.
 */
#include "uploads/tus_meta.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static int errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Strict base64 (RFC 4648 with padding) of in[0..len) into a new buffer
 * (NUL-terminated). Returns 0 or -1 (malformed, too long, no memory). */
static int b64_decode(const char *in, size_t len, size_t max, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (len % 4 != 0)
        return -1;
    size_t pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '=') {
            if (i < len - 2)
                return -1;
            pad++;
        } else if (!b64_char(c) || pad) {
            return -1;
        }
    }
    if (pad > 2 || len / 4 * 3 - pad > max)
        return -1;
    unsigned char *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return -1;
    int n = len ? EVP_DecodeBlock(buf, (const unsigned char *)in, (int)len) : 0;
    if (n < 0 || (size_t)n != len / 4 * 3) {
        free(buf);
        return -1;
    }
    *outlen = (size_t)n - pad;
    buf[*outlen] = '\0';
    *out = (char *)buf;
    return 0;
}

void tus_meta_clear(struct tus_meta *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->pairs[i].value);
        m->pairs[i].value = NULL;
    }
    m->n = 0;
}

int tus_meta_parse(const char *header, struct tus_meta *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    if (!header)
        return 0;
    size_t total = strlen(header);
    if (total > TUS_META_HEADER_MAX)
        return errf(err, errlen, "Upload-Metadata is longer than %d bytes", TUS_META_HEADER_MAX);
    const char *p = header;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p)
        return 0;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        /* one pair: trim, then "key" or "key value" */
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a == b) {
            tus_meta_clear(m);
            return errf(err, errlen, "Upload-Metadata has an empty pair");
        }
        const char *k_end = a;
        while (k_end < b && *k_end != ' ')
            k_end++;
        size_t klen = (size_t)(k_end - a);
        if (klen > TUS_META_KEY_MAX) {
            tus_meta_clear(m);
            return errf(err, errlen, "an Upload-Metadata key is longer than %d bytes",
                        TUS_META_KEY_MAX);
        }
        for (size_t i = 0; i < klen; i++) {
            unsigned char c = (unsigned char)a[i];
            if (c <= ' ' || c >= 0x7f || c == ',') {
                tus_meta_clear(m);
                return errf(err, errlen, "an Upload-Metadata key has a forbidden character");
            }
        }
        if (m->n == TUS_META_PAIRS_MAX) {
            tus_meta_clear(m);
            return errf(err, errlen, "Upload-Metadata has more than %d pairs", TUS_META_PAIRS_MAX);
        }
        struct tus_meta_pair *pr = &m->pairs[m->n];
        memcpy(pr->key, a, klen);
        pr->key[klen] = '\0';
        for (size_t i = 0; i < m->n; i++) {
            if (strcmp(m->pairs[i].key, pr->key) == 0) {
                tus_meta_clear(m);
                return errf(err, errlen, "Upload-Metadata key '%s' appears twice", pr->key);
            }
        }
        const char *v = k_end;
        if (v < b) {
            v++; /* the one space */
            if (v >= b || *v == ' ' ||
                b64_decode(v, (size_t)(b - v), TUS_META_VALUE_MAX, &pr->value, &pr->value_len) <
                    0) {
                char key[TUS_META_KEY_MAX + 1];
                memcpy(key, pr->key, sizeof(key));
                tus_meta_clear(m);
                return errf(err, errlen,
                            "the Upload-Metadata value of '%s' is not valid base64 (or over %d "
                            "bytes)",
                            key, TUS_META_VALUE_MAX);
            }
        } else {
            pr->value = strdup("");
            if (!pr->value) {
                tus_meta_clear(m);
                return errf(err, errlen, "out of memory");
            }
        }
        m->n++;
        if (!*end)
            break;
        p = end + 1;
    }
    return 0;
}

const char *tus_meta_get(const struct tus_meta *m, const char *key, size_t *len)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->pairs[i].key, key) == 0) {
            if (len)
                *len = m->pairs[i].value_len;
            return m->pairs[i].value;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ checksum */

static const struct {
    const char *name;
    size_t size;
} algos[] = {{"sha1", 20}, {"sha256", 32}, {"sha512", 64}, {"md5", 16}};

const char *tus_checksum_algorithms(void)
{
    return "sha1,sha256,sha512,md5";
}

int tus_checksum_parse(const char *header, char algo[16], unsigned char digest[TUS_DIGEST_MAX],
                       size_t *dlen, char *err, size_t errlen)
{
    const char *sp = header ? strchr(header, ' ') : NULL;
    if (!sp || sp == header || (size_t)(sp - header) >= 16)
        return errf(err, errlen, "Upload-Checksum must be '<algorithm> <base64 digest>'");
    size_t alen = (size_t)(sp - header);
    char name[16];
    for (size_t i = 0; i < alen; i++) {
        char c = header[i];
        name[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    name[alen] = '\0';
    size_t want = 0;
    for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++)
        if (strcmp(algos[i].name, name) == 0)
            want = algos[i].size;
    if (!want) {
        errf(err, errlen, "checksum algorithm '%s' is not supported (use one of %s)", name,
             tus_checksum_algorithms());
        return -2;
    }
    char *raw = NULL;
    size_t rawlen = 0;
    const char *v = sp + 1;
    if (b64_decode(v, strlen(v), TUS_DIGEST_MAX, &raw, &rawlen) < 0 || rawlen != want) {
        free(raw);
        return errf(err, errlen, "the Upload-Checksum digest is not a base64 %s digest", name);
    }
    memcpy(digest, raw, rawlen);
    free(raw);
    *dlen = rawlen;
    memcpy(algo, name, alen + 1);
    return 0;
}

struct tus_digest {
    EVP_MD_CTX *ctx;
};

int tus_digest_new(const char *algo, struct tus_digest **out)
{
    *out = NULL;
    const EVP_MD *md = EVP_get_digestbyname(algo);
    if (!md)
        return -1;
    struct tus_digest *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    d->ctx = EVP_MD_CTX_new();
    if (!d->ctx || EVP_DigestInit_ex(d->ctx, md, NULL) != 1) {
        tus_digest_free(&d);
        return -1;
    }
    *out = d;
    return 0;
}

int tus_digest_update(struct tus_digest *d, const void *buf, size_t len)
{
    return EVP_DigestUpdate(d->ctx, buf, len) == 1 ? 0 : -1;
}

int tus_digest_matches(struct tus_digest *d, const unsigned char *want, size_t wlen)
{
    unsigned char got[EVP_MAX_MD_SIZE];
    unsigned int glen = 0;
    if (EVP_DigestFinal_ex(d->ctx, got, &glen) != 1)
        return -1;
    return glen == wlen && memcmp(got, want, wlen) == 0;
}

void tus_digest_free(struct tus_digest **pp)
{
    if (!pp || !*pp)
        return;
    EVP_MD_CTX_free((*pp)->ctx);
    free(*pp);
    *pp = NULL;
}
