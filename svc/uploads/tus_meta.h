/*
 * tus_meta.h - the header values of the tus 1.0.0 protocol that carry data:
 * Upload-Metadata (comma-separated "key base64value" pairs) and
 * Upload-Checksum ("algorithm base64digest"), plus a running digest of a
 * PATCH body for the checksum extension.
 *
 * Threading: pure functions on caller-owned values; any thread.
 */
#ifndef VIDQ_TUS_META_H
#define VIDQ_TUS_META_H

#include <stddef.h>
#include <stdint.h>

/* Hard caps: what is over them is refused (400), never truncated. */
enum {
    TUS_META_HEADER_MAX = 96 * 1024, /* the whole Upload-Metadata header */
    TUS_META_PAIRS_MAX = 32,
    TUS_META_KEY_MAX = 64,      /* bytes of a key */
    TUS_META_VALUE_MAX = 65536, /* decoded bytes of one value */
    TUS_DIGEST_MAX = 64,        /* bytes of the longest digest (sha512) */
};

struct tus_meta_pair {
    char key[TUS_META_KEY_MAX + 1];
    char *value;      /* decoded, NUL-terminated (owned); "" when the key had no value */
    size_t value_len; /* decoded length (a value may hold NUL bytes) */
};

struct tus_meta {
    struct tus_meta_pair pairs[TUS_META_PAIRS_MAX];
    size_t n;
};

/* Parse an Upload-Metadata header (NULL or "" gives no pairs). Keys are
 * printable ASCII without spaces or commas, unique; values strict base64
 * (padding required). Returns 0, or -1 with a human reason in err (m is
 * left empty). m must be released with tus_meta_clear. */
int tus_meta_parse(const char *header, struct tus_meta *m, char *err, size_t errlen);

/* The decoded value of key, or NULL when absent (borrowed from m). */
const char *tus_meta_get(const struct tus_meta *m, const char *key, size_t *len);

/* Free the values of m; m may be parsed again afterwards. */
void tus_meta_clear(struct tus_meta *m);

/* The checksum algorithms this server accepts, comma-separated (for the
 * Tus-Checksum-Algorithm header). Static. */
const char *tus_checksum_algorithms(void);

/* Parse an Upload-Checksum header: an accepted algorithm name (copied to
 * algo, lower case) and a base64 digest of the right length (to digest,
 * its size in *dlen). Returns 0, -1 for a malformed header (400) or -2 for
 * an algorithm not supported (400 as well, a different message). */
int tus_checksum_parse(const char *header, char algo[16], unsigned char digest[TUS_DIGEST_MAX],
                       size_t *dlen, char *err, size_t errlen);

struct tus_digest;

/* Start a running digest of algo (from tus_checksum_parse). Returns 0 or -1
 * (out of memory / unknown). */
int tus_digest_new(const char *algo, struct tus_digest **out);

/* Feed len bytes. */
int tus_digest_update(struct tus_digest *d, const void *buf, size_t len);

/* 1 when the digest of everything fed equals want[0..wlen), 0 when not,
 * -1 on an error. May be called once. */
int tus_digest_matches(struct tus_digest *d, const unsigned char *want, size_t wlen);

/* Accepts NULL and sets *pp = NULL. */
void tus_digest_free(struct tus_digest **pp);

#endif
