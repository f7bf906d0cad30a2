/* sign.c - see sign.h. */
#define _GNU_SOURCE /* mkostemp */
#include "hooks/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "common/log.h"

#define SECRET_FILE "webhook_secret"
#define GENERATED_BYTES 32

static void set_err(char *err, size_t cap, const char *msg)
{
    if (err && cap)
        snprintf(err, cap, "%s", msg);
}

static int is_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

int hook_secret_parse(const char *text, struct hook_secret *out, char *err, size_t err_cap)
{
    static const char prefix[] = HOOK_SECRET_PREFIX;
    const size_t plen = sizeof(prefix) - 1;
    unsigned char buf[HOOK_SECRET_MAX_BYTES + 3];

    if (!text || strncmp(text, prefix, plen) != 0) {
        set_err(err, err_cap, "webhook secret must start with \"whsec_\" (whsec_<base64>)");
        return -EINVAL;
    }
    const char *b64 = text + plen;
    size_t n = strlen(b64);
    /* 24..64 bytes encode to 32..88 characters, always a multiple of 4. */
    if (n < 32 || n > 88 || n % 4 != 0) {
        set_err(err, err_cap,
                "webhook secret must be whsec_ + base64 of 24 to 64 bytes (32 to 88 characters)");
        return -EINVAL;
    }
    /* EVP_DecodeBlock skips whitespace and is lax about '=' placement:
     * check the alphabet ourselves so that only canonical text passes. */
    size_t pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b64[i];
        if (c == '=' && i >= n - 2) {
            pad++;
            continue;
        }
        if (pad || !is_b64_char(c)) {
            set_err(err, err_cap, "webhook secret is not valid base64 after \"whsec_\"");
            return -EINVAL;
        }
    }
    int got = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n);
    if (got < 0 || (size_t)got < pad) {
        set_err(err, err_cap, "webhook secret is not valid base64 after \"whsec_\"");
        return -EINVAL;
    }
    size_t len = (size_t)got - pad; /* EVP_DecodeBlock counts the padding as zero bytes */
    if (len < HOOK_SECRET_MIN_BYTES || len > HOOK_SECRET_MAX_BYTES) {
        set_err(err, err_cap, "webhook secret must decode to 24 to 64 bytes");
        return -EINVAL;
    }
    memcpy(out->key, buf, len);
    out->len = len;
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

int hook_secret_generate(struct hook_secret *out)
{
    if (RAND_bytes(out->key, GENERATED_BYTES) != 1)
        return -EIO;
    out->len = GENERATED_BYTES;
    return 0;
}

int hook_secret_format(const struct hook_secret *secret, char *out, size_t cap)
{
    unsigned char b64[4 * ((HOOK_SECRET_MAX_BYTES + 2) / 3) + 1];
    if (secret->len < 1 || secret->len > HOOK_SECRET_MAX_BYTES)
        return -EINVAL;
    int n = EVP_EncodeBlock(b64, secret->key, (int)secret->len);
    int w = snprintf(out, cap, "%s%.*s", HOOK_SECRET_PREFIX, n, (const char *)b64);
    OPENSSL_cleanse(b64, sizeof(b64));
    return (w < 0 || (size_t)w >= cap) ? -ENOSPC : 0;
}

/* Read the whole (small) secret file into text; -ENOENT if absent. */
static int read_secret_file(const char *path, char *text, size_t cap, char *err, size_t err_cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    int ret = -EIO;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_cap, "%s is not a regular file", path);
        goto out;
    }
    if (st.st_mode & 077)
        log_warn("webhook secret file %s is readable by group/others (mode %03o); "
                 "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t r = read(fd, text + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, err_cap, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    text[n] = '\0';
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        text[--n] = '\0';
    ret = 0;
out:
    close(fd);
    return ret;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

int hook_secret_load_or_create(const char *data_dir, struct hook_secret *out, char *err,
                               size_t err_cap)
{
    char path[4096], tmp[4096], text[256] = "";
    char perr[200];
    int fd = -1;
    int ret = -EIO;
    int tmp_made = 0;

    if (snprintf(path, sizeof(path), "%s/%s", data_dir, SECRET_FILE) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", data_dir, SECRET_FILE) >= (int)sizeof(tmp)) {
        set_err(err, err_cap, "data dir path too long");
        return -ENAMETOOLONG;
    }
    for (int tries = 0; tries < 2; tries++) {
        int r = read_secret_file(path, text, sizeof(text), err, err_cap);
        if (r == 0) {
            if (hook_secret_parse(text, out, perr, sizeof(perr)) != 0) {
                snprintf(err, err_cap, "%s: %s", path, perr);
                ret = -EINVAL;
                goto out;
            }
            ret = 0;
            goto out;
        }
        if (r != -ENOENT) {
            if (r != -EIO)
                snprintf(err, err_cap, "cannot open %s: %s", path, strerror(-r));
            ret = r;
            goto out;
        }
        /* Absent: write a new one aside, then link() it into place, which
         * fails with EEXIST instead of replacing a secret that another
         * process put there meanwhile (then we read theirs). */
        struct hook_secret fresh;
        if (hook_secret_generate(&fresh) != 0 ||
            hook_secret_format(&fresh, text, sizeof(text)) != 0) {
            set_err(err, err_cap, "cannot generate a webhook secret (RAND_bytes failed)");
            goto out;
        }
        OPENSSL_cleanse(&fresh, sizeof(fresh));
        fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
        if (fd < 0) {
            snprintf(err, err_cap, "cannot create %s: %s", tmp, strerror(errno));
            ret = -errno;
            goto out;
        }
        tmp_made = 1;
        size_t tlen = strlen(text);
        text[tlen] = '\n';
        r = write_all(fd, text, tlen + 1);
        text[tlen] = '\0';
        if (r == 0 && fsync(fd) != 0)
            r = -errno;
        close(fd);
        fd = -1;
        if (r != 0) {
            snprintf(err, err_cap, "cannot write %s: %s", tmp, strerror(-r));
            ret = r;
            goto out;
        }
        if (link(tmp, path) == 0) {
            unlink(tmp);
            tmp_made = 0;
            log_info("generated a webhook secret in %s", path);
            /* Make the new name durable too. */
            int dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            continue; /* read it back through the one parsing path */
        }
        int e = errno;
        unlink(tmp);
        tmp_made = 0;
        snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", data_dir, SECRET_FILE);
        if (e != EEXIST) {
            snprintf(err, err_cap, "cannot create %s: %s", path, strerror(e));
            ret = -e;
            goto out;
        }
    }
    set_err(err, err_cap, "webhook secret file keeps disappearing");
out:
    if (fd >= 0)
        close(fd);
    if (tmp_made)
        unlink(tmp);
    OPENSSL_cleanse(text, sizeof(text));
    return ret;
}

int hook_sign(const struct hook_secret *secret, const char *msg_id, int64_t timestamp,
              const char *body, size_t body_len, char *out, size_t cap)
{
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned char b64[64];
    char ts[32];
    size_t md_len = 0;
    int ret = -EIO;

    if (cap < HOOK_SIGNATURE_MAX || !secret || secret->len == 0 || !msg_id ||
        (!body && body_len))
        return -EINVAL;
    int ts_len = snprintf(ts, sizeof(ts), "%" PRId64, timestamp);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac)
        goto out;
    ctx = EVP_MAC_CTX_new(mac);
    if (!ctx || !EVP_MAC_init(ctx, secret->key, secret->len, params))
        goto out;
    if (!EVP_MAC_update(ctx, (const unsigned char *)msg_id, strlen(msg_id)) ||
        !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)ts_len) ||
        !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
        (body_len && !EVP_MAC_update(ctx, (const unsigned char *)body, body_len)) ||
        !EVP_MAC_final(ctx, md, &md_len, sizeof(md)))
        goto out;
    int n = EVP_EncodeBlock(b64, md, (int)md_len);
    snprintf(out, cap, "v1,%.*s", n, (const char *)b64);
    ret = 0;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ret;
}
