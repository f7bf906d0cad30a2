/* lazy_zero.c - av_mallocz that leaves untouched pages to the kernel.
 *
 * Why: libavcodec zeroes every context it allocates, and some are large
 * and mostly unused: the H.264 decoder's is 765 KB, the AAC decoder's
 * channel elements 548 KB, a PPS 174 KB, for a clip of any size. The
 * memset writes every page, and in a fresh process (each probe and job
 * child is one) the first write to a page is a page fault: 10-15 us on a
 * VM that shadows page tables (tests/bench/bench_page_touch.sh). A probe
 * wrote ~560 heap pages, most of them only to zero them.
 *
 * What: this file defines av_mallocz, so the binary's definition is the
 * one libavcodec, libavformat, libavfilter and libswscale call (symbol
 * interposition: the executable comes first in the dynamic linker's
 * search; libavutil's own internal calls keep its own). Small blocks are
 * zeroed with memset as before. Of a large block, the whole pages inside
 * it that are not resident (mincore) are handed back with MADV_DONTNEED,
 * which makes them read as zero and costs nothing until they are used;
 * resident pages (memory malloc reuses) are zeroed with memset, which is
 * cheaper for them than a new fault. The result is the same as
 * av_mallocz's: size bytes of zero, aligned as av_malloc aligns, freed by
 * av_free.
 *
 * Assumes: malloc's memory is private anonymous memory (glibc's heap and
 * mmap chunks, ASan's allocator), for which MADV_DONTNEED means "zero on
 * the next touch". If madvise or mincore fails, the range is zeroed with
 * memset.
 *
 * Threading: any thread (no state). */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libavutil/mem.h>

/* Below this many bytes a block is zeroed with memset: the two system
 * calls cost more than the few pages they could spare. */
enum { LAZY_ZERO_MIN = 64 * 1024, PAGES_PER_CALL = 256 };

/* Zero the whole pages [start, start + len): resident ones by memset,
 * the others by MADV_DONTNEED. */
static void zero_pages(char *start, size_t len, size_t pg)
{
    unsigned char resident[PAGES_PER_CALL];
    while (len > 0) {
        size_t n = len / pg < PAGES_PER_CALL ? len / pg : PAGES_PER_CALL;
        if (mincore(start, n * pg, resident) < 0) {
            memset(start, 0, len);
            return;
        }
        for (size_t i = 0; i < n;) {
            size_t j = i;
            int in = resident[i] & 1;
            while (j < n && (resident[j] & 1) == in)
                j++;
            char *run = start + i * pg;
            size_t run_len = (j - i) * pg;
            if (in || madvise(run, run_len, MADV_DONTNEED) < 0)
                memset(run, 0, run_len);
            i = j;
        }
        start += n * pg;
        len -= n * pg;
    }
}

void *av_mallocz(size_t size)
{
    char *p = av_malloc(size);
    if (!p)
        return NULL;
    size_t pg = (size_t)getpagesize();
    uintptr_t first = ((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1);
    uintptr_t end = ((uintptr_t)p + size) & ~(uintptr_t)(pg - 1);
    if (size < LAZY_ZERO_MIN || end <= first) {
        memset(p, 0, size);
        return p;
    }
    memset(p, 0, first - (uintptr_t)p);
    memset((char *)end, 0, (uintptr_t)p + size - end);
    zero_pages((char *)first, end - first, pg);
    return p;
}
