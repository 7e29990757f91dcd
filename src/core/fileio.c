/* fileio.c — whole-file reads and atomic writes. */
#define _POSIX_C_SOURCE 200809L
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opens a regular file of at most max_bytes for reading: *fd and its size. */
static idl_status open_regular(const char *path, uint64_t max_bytes, int *fd, size_t *size) {
    *fd = open(path, O_RDONLY);
    if (*fd < 0) return idl__error(IDL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(*fd);
        return idl__error(IDL_ERR_IO, "'%s' is not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(*fd);
        return idl__error(IDL_ERR_INVALID_ARG, "'%s' is %lld bytes, over the limit of %llu", path,
                          (long long)st.st_size, (unsigned long long)max_bytes);
    }
    *size = (size_t)st.st_size;
    return IDL_OK;
}

idl_status idl__read_file(const char *path, uint64_t max_bytes, unsigned char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int fd = -1;
    size_t n = 0;
    idl_status rc = open_regular(path, max_bytes, &fd, &n);
    if (rc) return rc;
    unsigned char *buf = idl__malloc(n + 1);
    if (!buf) {
        close(fd);
        return idl__error(IDL_ERR_NOMEM, "cannot allocate %zu bytes for '%s'", n, path);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            close(fd);
            idl__free(buf);
            return idl__error(IDL_ERR_IO, "short read on '%s'", path);
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return IDL_OK;
}

idl_status idl__map_file(const char *path, uint64_t max_bytes, const unsigned char **out,
                         size_t *len) {
    *out = NULL;
    *len = 0;
    int fd = -1;
    size_t n = 0;
    idl_status rc = open_regular(path, max_bytes, &fd, &n);
    if (rc) return rc;
    if (n == 0) {
        close(fd);
        return idl__error(IDL_ERR_PARSE, "'%s' is empty", path);
    }
    void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return idl__error(IDL_ERR_IO, "cannot map '%s': %s", path, strerror(e));
    *out = p;
    *len = n;
    return IDL_OK;
}

void idl__unmap_file(const unsigned char *p, size_t len) {
    if (p) munmap((void *)p, len);
}

idl_status idl__write_atomic(const char *path, const void *const *pieces, const size_t *sizes,
                             int n) {
    size_t lp = strlen(path);
    char *tmp = idl__malloc(lp + 32);
    if (!tmp) return idl__error(IDL_ERR_NOMEM, "out of memory");
    snprintf(tmp, lp + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        idl_status s = idl__error(IDL_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
        idl__free(tmp);
        return s;
    }
    for (int i = 0; i < n; i++) {
        const unsigned char *p = pieces[i];
        size_t left = sizes[i];
        while (left) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                idl_status s =
                    idl__error(IDL_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
                close(fd);
                unlink(tmp);
                idl__free(tmp);
                return s;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (fsync(fd) != 0 && errno != EINVAL) { /* tolerate file systems without fsync */
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        idl_status s = idl__error(IDL_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        idl__free(tmp);
        return s;
    }
    idl__free(tmp);
    return IDL_OK;
}
