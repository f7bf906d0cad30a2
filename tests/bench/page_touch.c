/*
 * page_touch.c - what a fresh page costs on this host, the cost every
 * forked child (probe, job, spare) pays for each page it writes first.
 * Built and run by bench_page_touch.sh; prints medians of ROUNDS rounds:
 *   touch:    one write per page of a fresh 4 MiB mapping (one page fault
 *             each);
 *   populate: MADV_POPULATE_WRITE of a fresh 4 MiB mapping (the same
 *             pages, faulted in by one system call), then the first and
 *             the second memset of it;
 *   fork:     a fork of a process holding 16 MiB of written memory, and
 *             the child's first write of 256 of those pages (copy on
 *             write).
 * On bare metal a fault costs well under a microsecond and the first
 * memset of populated memory is as fast as the second; on a host that
 * shadows page tables, each first touch costs microseconds, faulted or
 * not.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

enum { ROUNDS = 9, PAGE = 4096, SIZE = 4 << 20, NPAGES = SIZE / PAGE };

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v)
{
    qsort(v, ROUNDS, sizeof(*v), cmp);
    return v[ROUNDS / 2];
}

static char *fresh(size_t n)
{
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

int main(void)
{
    double touch[ROUNDS], pop[ROUNDS], first[ROUNDS], second[ROUNDS], fork_us[ROUNDS],
        cow[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        char *a = fresh(SIZE);
        double t0 = now_us();
        for (size_t i = 0; i < SIZE; i += PAGE)
            a[i] = 1;
        touch[r] = now_us() - t0;
        munmap(a, SIZE);

        char *b = fresh(SIZE);
        t0 = now_us();
        if (madvise(b, SIZE, MADV_POPULATE_WRITE) != 0) {
            perror("madvise(MADV_POPULATE_WRITE) (Linux 5.14 or later)");
            return 1;
        }
        double t1 = now_us();
        memset(b, 1, SIZE);
        double t2 = now_us();
        memset(b, 2, SIZE);
        double t3 = now_us();
        pop[r] = t1 - t0;
        first[r] = t2 - t1;
        second[r] = t3 - t2;
        munmap(b, SIZE);

        char *c = fresh(4 * SIZE);
        memset(c, 3, 4 * SIZE);
        int pfd[2];
        if (pipe(pfd) != 0)
            return 1;
        t0 = now_us();
        pid_t pid = fork();
        if (pid == 0) {
            double c0 = now_us();
            for (int i = 0; i < 256; i++)
                c[(size_t)i * PAGE] = 4;
            double d = now_us() - c0;
            if (write(pfd[1], &d, sizeof(d)) != sizeof(d))
                _exit(1);
            _exit(0);
        }
        fork_us[r] = now_us() - t0;
        double d = 0;
        if (pid < 0 || read(pfd[0], &d, sizeof(d)) != sizeof(d))
            return 1;
        waitpid(pid, NULL, 0);
        cow[r] = d;
        close(pfd[0]);
        close(pfd[1]);
        munmap(c, 4 * SIZE);
    }
    printf("touch, one fault per page:        %6.2f us/page\n", median(touch) / NPAGES);
    printf("MADV_POPULATE_WRITE:              %6.2f us/page\n", median(pop) / NPAGES);
    printf("  then the first memset:          %6.2f us/page\n", median(first) / NPAGES);
    printf("  and the second memset:          %6.2f us/page\n", median(second) / NPAGES);
    printf("fork of 16 MiB written:           %6.0f us (in the parent)\n", median(fork_us));
    printf("  the child's first writes (COW): %6.2f us/page\n", median(cow) / 256);
    return 0;
}
