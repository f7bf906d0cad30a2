/*
 * A full disk while an upload arrives: 507 insufficient_storage, nothing
 * half-written left, and the server keeps serving. The data dir is a 2 MiB
 * tmpfs (skipped where mounting is not allowed). The disk guard is off
 * (--min-free-bytes 0): this is the ENOSPC path alone; test_svc_disk_guard
 * covers the threshold.
 * ctest-labels: integration
 * ctest-timeout: 120
 */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "test_support.h"

int main(void)
{
    char *dir = ts_mkdtemp("svc-disk-full");
    if (mount("tmpfs", dir, "tmpfs", 0, "size=2m") != 0) {
        perror("skip: cannot mount a small tmpfs");
        rmdir(dir);
        free(dir);
        return 77;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char data[4200], big[4200], tmpdir[4300], inputs[4300], media[4200];
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", data);
    snprintf(inputs, sizeof(inputs), "%s/inputs", data);
    snprintf(media, sizeof(media), "%s/h264_aac_640x360.mp4", ts_env("VIDQ_MEDIA"));
    snprintf(big, sizeof(big), "%s/../svc-disk-full-big.bin", dir);
    FILE *f = fopen(big, "wb");
    TS_CHECK(f, "big file");
    static char chunk[65536];
    memset(chunk, 7, sizeof(chunk));
    for (int i = 0; i < 48; i++) /* 3 MiB: more than the disk holds */
        fwrite(chunk, 1, sizeof(chunk), f);
    fclose(f);

    struct ts_server s;
    ts_server_start(&s, data, "--isolation thread --min-free-bytes 0");
    struct ts_http r;
    ts_http_upload_raw(&s, &r, "/upload", big, "video/mp4", NULL);
    TS_CHECK(r.status == 507 && strstr(r.body, "insufficient_storage"), "raw: %ld %s", r.status,
             r.body);
    ts_http_free(&r);
    TS_CHECK(ts_count_files(tmpdir) == 0 && ts_count_files(inputs) == 0, "leftovers after 507");
    ts_http_upload_multipart(&s, &r, "/upload", big, NULL, NULL);
    TS_CHECK(r.status == 507 && strstr(r.body, "insufficient_storage"), "multipart: %ld %s",
             r.status, r.body);
    ts_http_free(&r);
    TS_CHECK(ts_count_files(tmpdir) == 0 && ts_count_files(inputs) == 0, "leftovers after 507");

    /* The space is free again: a small upload is taken. */
    ts_http_upload_raw(&s, &r, "/upload?preset=thumbnail", media, "video/mp4", NULL);
    TS_CHECK(r.status == 202, "small upload after 507: %ld %s", r.status, r.body);
    ts_http_free(&r);
    ts_http(&s, &r, "GET", "/healthz", NULL, NULL, 0);
    TS_CHECK(r.status == 200, "healthz");
    ts_http_free(&r);
    int st = ts_server_stop(&s, SIGTERM, 20);
    TS_CHECK(st == 0, "exit %d", st);
    unlink(big);
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    free(dir);
    curl_global_cleanup();
    printf("ok\n");
    return 0;
}
