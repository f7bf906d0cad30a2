/* error.c - error names and messages of the transcode library (tc.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "transcode/tc.h"
#include "internal.h"

static const struct {
    int code;
    const char *name;
    const char *message;
} errors[] = {
    {TC_OK, "ok", "success"},
    {TC_EINVAL, "bad_request", "invalid argument"},
    {TC_EINVALID_PRESET, "invalid_preset", "no such preset"},
    {TC_EINVALID_OUTPUT, "invalid_output", "invalid output spec"},
    {TC_EUNSUPPORTED, "unsupported_media", "not a decodable audio or video file"},
    {TC_ECANCELED, "canceled", "the job was canceled"},
    {TC_EIO, "io_error", "input/output error"},
    {TC_ENOSPC, "no_space", "no space left on the device"},
    {TC_ENOMEM, "out_of_memory", "out of memory"},
    {TC_EDECODE, "decode_failed", "the input could not be decoded"},
    {TC_EENCODE, "encode_failed", "the output could not be encoded"},
    {TC_ENOT_REMUXABLE, "not_remuxable", "the input's streams cannot be copied into this container"},
    {TC_EINTERNAL, "internal_error", "internal error"},
};

const char *tc_errname(int code)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (errors[i].code == code)
            return errors[i].name;
    return "internal_error";
}

const char *tc_strerror(int code)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (errors[i].code == code)
            return errors[i].message;
    return "internal error";
}

int tc_error_set(struct tc_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *tc_version(void)
{
    static char version[128];
    /* Written once with the same bytes by whoever calls first: benign. */
    if (!version[0]) {
        unsigned v = avcodec_version();
        snprintf(version, sizeof(version), "vidq-transcode %s (libavcodec %u.%u.%u, libavformat %u.%u.%u)",
                 VIDQ_VERSION, v >> 16, (v >> 8) & 0xff, v & 0xff, avformat_version() >> 16,
                 (avformat_version() >> 8) & 0xff, avformat_version() & 0xff);
    }
    return version;
}

int tc_averror_code(int averr, int fallback)
{
    switch (averr) {
    case AVERROR(ENOSPC):
    case AVERROR(EDQUOT):
        return TC_ENOSPC;
    case AVERROR(ENOMEM):
        return TC_ENOMEM;
    case AVERROR_EXIT:
        return TC_ECANCELED;
    case AVERROR(EIO):
    case AVERROR(EACCES):
    case AVERROR(EROFS):
    case AVERROR(EPERM):
        return TC_EIO;
    default:
        return fallback;
    }
}

int tc_error_av(struct tc_error *err, int code, int averr, const char *what)
{
    char buf[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, buf, sizeof(buf));
    code = tc_averror_code(averr, code);
    if (code == TC_ECANCELED)
        return tc_error_set(err, code, "canceled");
    return tc_error_set(err, code, "%s: %s", what, buf);
}
