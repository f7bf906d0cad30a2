/* input_guard.c - open an untrusted upload so that nothing but its own
 * bytes can be read.
 *
 * The input is a descriptor: opened here from a path (regular files only),
 * or handed over already open by the caller (tc_input_open_fd: the
 * sandboxed worker child, which may open nothing by path). Its bytes reach
 * libavformat through our own AVIOContext over that descriptor, read with
 * pread at our own offset, so no URL protocol is involved for the input
 * itself and a caller's descriptor keeps its file offset. Nested opens (a
 * playlist naming another URL) are limited to the "file" protocol by
 * protocol_whitelist and, more to the point, can never happen: the
 * detected format must be on an allow-list of ordinary single-file
 * containers, checked BEFORE the demuxer's read_header runs. Playlists,
 * scripts, devices and image-sequence patterns are refused by name too
 * (belt and braces).
 *
 * Threading: any thread; the cancel flag is read from libav's read path. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavformat/avformat.h>
#include <libavutil/opt.h>

#include "transcode/tc.h"
#include "internal.h"

enum { IO_BUF = 64 * 1024 };

/* Demuxers an upload may be read with (libavformat short names). */
static const char *const allowed[] = {
    "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "flv", "mpegts", "mpeg", "mpegvideo",
    "mp3", "aac", "ac3", "eac3", "wav", "w64", "aiff", "ogg", "flac", "asf", "h264", "hevc",
    "m4v", "mxf", "nut", "ivf", "caf", "amr", "wv", "dv", "gif", "obu", "dts", "truehd",
    "mjpeg", "avs", "rm", "ape", "tta", "au", "loas", "latm", "mpegtsraw", "vc1", "yuv4mpegpipe",
};

/* Never, whatever the allow-list says: they open other URLs or files, run
 * scripts, or read devices. */
static const char *const denied[] = {
    "hls", "applehttp", "concat", "ffconcat", "dash", "webm_dash_manifest", "hds", "smoothstreaming",
    "image2", "image2pipe", "lavfi", "sdp", "rtsp", "rtp", "sap", "tty", "ffmetadata",
    "imf", "mpjpeg", "data", "bin", "libcdio", "v4l2", "alsa", "fbdev", "x11grab", "pulse",
    "oss", "jack", "kmsgrab", "openal", "lavfi", "srtp", "tedcaptions", "subviewer", "http",
};

int tc_input_format_allowed(const char *name)
{
    if (!name)
        return 0;
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
        if (strcmp(name, denied[i]) == 0)
            return 0;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (strcmp(name, allowed[i]) == 0)
            return 1;
    return 0;
}

struct fd_io {
    int fd;
    int owned;        /* 1: opened here, closed by tc_input_close */
    int64_t pos;      /* our offset: pread never moves the descriptor's */
    int64_t size;
    atomic_int *cancel;
};

static int fd_read(void *opaque, uint8_t *buf, int n)
{
    struct fd_io *io = opaque;
    if (io->cancel && atomic_load(io->cancel))
        return AVERROR_EXIT;
    for (;;) {
        ssize_t r = pread(io->fd, buf, (size_t)n, (off_t)io->pos);
        if (r > 0) {
            io->pos += r;
            return (int)r;
        }
        if (r == 0)
            return AVERROR_EOF;
        if (errno != EINTR)
            return AVERROR(errno);
    }
}

static int64_t fd_seek(void *opaque, int64_t offset, int whence)
{
    struct fd_io *io = opaque;
    int64_t to;
    if (whence & AVSEEK_SIZE)
        return io->size;
    switch (whence & ~AVSEEK_FORCE) {
    case SEEK_SET: to = offset; break;
    case SEEK_CUR: to = io->pos + offset; break;
    case SEEK_END: to = io->size + offset; break;
    default: return AVERROR(EINVAL);
    }
    if (to < 0)
        return AVERROR(EINVAL);
    io->pos = to;
    return to;
}

static int interrupt_cb(void *opaque)
{
    atomic_int *cancel = opaque;
    return cancel && atomic_load(cancel);
}

/* The parts we own besides the format context. */
struct guard {
    struct tc_input in;      /* first: tc_input_close casts back */
    struct fd_io io;
    AVIOContext *pb;
};

/* Open the input read through fd. owned: fd was opened here and is closed
 * on failure or by tc_input_close; else it stays the caller's, untouched. */
static int input_open(int fd, int owned, atomic_int *cancel, struct tc_input **out,
                      struct tc_error *err)
{
    struct guard *g = NULL;
    AVFormatContext *fmt = NULL;
    const AVInputFormat *ifmt = NULL;
    AVDictionary *opts = NULL;
    unsigned char *buf = NULL;
    struct stat stt;
    int ret = TC_EINTERNAL, r;

    *out = NULL;
    g = av_mallocz(sizeof(*g));
    if (!g) {
        if (owned)
            close(fd);
        return tc_error_set(err, TC_ENOMEM, "out of memory opening the input");
    }
    g->io.fd = fd;
    g->io.owned = owned;
    if (fstat(g->io.fd, &stt) != 0) {
        ret = tc_error_set(err, TC_EIO, "cannot read the input: %s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(stt.st_mode)) {
        ret = tc_error_set(err, TC_EUNSUPPORTED, "the input is not a regular file");
        goto out;
    }
    if (stt.st_size == 0) {
        ret = tc_error_set(err, TC_EUNSUPPORTED, "the input file is empty");
        goto out;
    }
    g->io.size = stt.st_size;
    g->io.cancel = cancel;
    g->in.size = stt.st_size;

    buf = av_malloc(IO_BUF);
    if (!buf) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory opening the input");
        goto out;
    }
    g->pb = avio_alloc_context(buf, IO_BUF, 0, &g->io, fd_read, NULL, fd_seek);
    if (!g->pb) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory opening the input");
        goto out;
    }
    buf = NULL; /* owned by pb */

    /* Detect the format from the bytes alone (no file name hint), then
     * judge it before any demuxer code reads a header. */
    r = av_probe_input_buffer2(g->pb, &ifmt, "", NULL, 0, 0);
    if (r < 0 || !ifmt) {
        ret = r == AVERROR_EXIT ? tc_error_set(err, TC_ECANCELED, "canceled")
                                : tc_error_set(err, TC_EUNSUPPORTED,
                                               "not a recognised audio or video file");
        goto out;
    }
    if (!tc_input_format_allowed(ifmt->name)) {
        ret = tc_error_set(err, TC_EUNSUPPORTED,
                           "input format '%.40s' is refused (playlists, scripts and non-media "
                           "formats are not accepted)",
                           ifmt->name);
        goto out;
    }

    fmt = avformat_alloc_context();
    if (!fmt) {
        ret = tc_error_set(err, TC_ENOMEM, "out of memory opening the input");
        goto out;
    }
    fmt->pb = g->pb;
    fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    fmt->interrupt_callback.callback = interrupt_cb;
    fmt->interrupt_callback.opaque = cancel;
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    av_dict_set(&opts, "format_whitelist", ifmt->name, 0);
    av_dict_set_int(&opts, "max_streams", TC_MAX_STREAMS, 0);
    r = avformat_open_input(&fmt, "", ifmt, &opts);
    if (r < 0) {
        /* avformat_open_input freed fmt (not our pb: custom IO). */
        ret = r == AVERROR_EXIT ? tc_error_set(err, TC_ECANCELED, "canceled")
                                : tc_error_av(err, TC_EUNSUPPORTED, r, "cannot read the input");
        goto out;
    }
    if (fmt->nb_streams == 0 || fmt->nb_streams > TC_MAX_STREAMS) {
        ret = tc_error_set(err, TC_EUNSUPPORTED, "the input has %u streams (1 to %d accepted)",
                           fmt->nb_streams, TC_MAX_STREAMS);
        goto out;
    }
    r = avformat_find_stream_info(fmt, NULL);
    if (r < 0) {
        ret = r == AVERROR_EXIT ? tc_error_set(err, TC_ECANCELED, "canceled")
                                : tc_error_av(err, TC_EUNSUPPORTED, r, "cannot read stream info");
        goto out;
    }
    if (fmt->nb_streams > TC_MAX_STREAMS) {
        ret = tc_error_set(err, TC_EUNSUPPORTED, "the input has more than %d streams",
                           TC_MAX_STREAMS);
        goto out;
    }
    g->in.fmt = fmt;
    fmt = NULL;
    *out = &g->in;
    g = NULL;
    ret = 0;
out:
    av_dict_free(&opts);
    avformat_close_input(&fmt);
    av_free(buf);
    if (g) {
        if (g->pb)
            av_freep(&g->pb->buffer);
        avio_context_free(&g->pb);
        if (g->io.owned)
            close(g->io.fd);
        av_free(g);
    }
    return ret;
}

int tc_input_open(const char *path, atomic_int *cancel, struct tc_input **out,
                  struct tc_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        const char *base = strrchr(path, '/');
        return tc_error_set(err, TC_EIO, "cannot open input '%.200s': %s", base ? base + 1 : path,
                            strerror(errno));
    }
    return input_open(fd, 1, cancel, out, err);
}

int tc_input_open_fd(int fd, atomic_int *cancel, struct tc_input **out, struct tc_error *err)
{
    *out = NULL;
    if (fd < 0)
        return tc_error_set(err, TC_EINVAL, "no input descriptor");
    return input_open(fd, 0, cancel, out, err);
}

void tc_input_close(struct tc_input **in)
{
    if (!in || !*in)
        return;
    struct guard *g = (struct guard *)*in;
    avformat_close_input(&g->in.fmt);
    if (g->pb)
        av_freep(&g->pb->buffer);
    avio_context_free(&g->pb);
    if (g->io.owned)
        close(g->io.fd);
    av_free(g);
    *in = NULL;
}
