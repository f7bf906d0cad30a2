/*
 * sign.h - Standard Webhooks signing (https://www.standardwebhooks.com/).
 *
 * A webhook request carries three headers:
 *   webhook-id         "msg_<32 hex>", the same on every retry of one event
 *   webhook-timestamp  Unix seconds, fresh per attempt
 *   webhook-signature  "v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">"
 * keyed by the server's secret, whose text form is "whsec_" + base64 of
 * 24..64 random bytes. HMAC, base64 and randomness come from OpenSSL's
 * libcrypto; nothing here is hand-rolled.
 *
 * The secret comes from --webhook-secret (validated by hook_secret_parse) or,
 * when not given, from <data dir>/webhook_secret, which hook_secret_load_or_create
 * generates on first start (mode 0600, written aside and linked into place so
 * a crash never leaves a half-written secret) and reuses afterwards.
 *
 * Threading: every function may be called from any thread; a struct
 * hook_secret is read-only once filled and may be shared.
 * Errors: functions return 0 or a negative errno value; where an `err`
 * buffer is taken, it receives one human sentence.
 */
#ifndef VIDQ_HOOK_SIGN_H
#define VIDQ_HOOK_SIGN_H

#include <stddef.h>
#include <stdint.h>

/* The message ids that the signature covers (hook_msg_id, HOOK_MSG_ID_MAX)
 * are made by the store with each outbox row. */
#include "store/hook_event.h"

#define HOOK_SECRET_PREFIX "whsec_"
#define HOOK_SECRET_MIN_BYTES 24
#define HOOK_SECRET_MAX_BYTES 64
/* Text form: prefix + base64 of 64 bytes (88 chars) + NUL. */
#define HOOK_SECRET_TEXT_MAX 96
/* "v1," + base64 of 32 bytes (44 chars) + NUL. */
#define HOOK_SIGNATURE_MAX 48

/* The signing key: the decoded bytes of a whsec_ secret. */
struct hook_secret {
    unsigned char key[HOOK_SECRET_MAX_BYTES];
    size_t len;
};

/* Parse "whsec_<base64>" into out. Fails with -EINVAL and a message in err
 * when the prefix is missing, the base64 is malformed, or it does not decode
 * to 24..64 bytes. */
int hook_secret_parse(const char *text, struct hook_secret *out, char *err, size_t err_cap);

/* A new random secret (32 bytes from RAND_bytes). */
int hook_secret_generate(struct hook_secret *out);

/* Text form of a secret ("whsec_..."), into out (HOOK_SECRET_TEXT_MAX). */
int hook_secret_format(const struct hook_secret *secret, char *out, size_t cap);

/* Read <data_dir>/webhook_secret, or create it with a new random secret when
 * it does not exist (mode 0600, atomically; if two processes race, both end
 * with the one that landed first). A file that exists but does not parse is
 * an error, never silently replaced. */
int hook_secret_load_or_create(const char *data_dir, struct hook_secret *out, char *err,
                               size_t err_cap);

/* "v1,<base64 HMAC-SHA256(key, msg_id "." timestamp "." body)>" into out
 * (at least HOOK_SIGNATURE_MAX bytes). body need not be NUL-terminated. */
int hook_sign(const struct hook_secret *secret, const char *msg_id, int64_t timestamp,
              const char *body, size_t body_len, char *out, size_t cap);

#endif
