#include "lib/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/mem.h"

int wr_file_read(const char *path, size_t max, char **out, size_t *out_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return WR_ERR_IO;
  struct stat st;
  if (fstat(fd, &st) != 0) goto fail_io;
  if (S_ISDIR(st.st_mode)) {
    errno = EISDIR;
    goto fail_io;
  }
  size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, len = 0;
  if (cap > max + 1) cap = max + 1;
  char *buf = wr_xmalloc(cap + 1);
  for (;;) {
    if (len == cap) {
      if (cap > max) break;
      cap *= 2;
      if (cap > max + 1) cap = max + 1;
      buf = wr_xrealloc(buf, cap + 1);
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      free(buf);
      goto fail_io;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  close(fd);
  if (len > max) {
    free(buf);
    return WR_ERR_LIMIT;
  }
  buf[len] = '\0';
  *out = buf;
  if (out_len) *out_len = len;
  return WR_OK;
fail_io: {
  int e = errno;
  close(fd);
  errno = e;
  return WR_ERR_IO;
}
}

int wr_file_write(const char *path, const void *data, size_t len, mode_t mode, int exclusive) {
  if (exclusive && wr_file_exists(path)) return WR_ERR_EXISTS;
  size_t plen = strlen(path);
  char *tmp = wr_xmalloc(plen + 16);
  snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    free(tmp);
    return WR_ERR_IO;
  }
  const char *p = data;
  size_t left = len;
  int rv = WR_OK;
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      rv = WR_ERR_IO;
      break;
    }
    p += n;
    left -= (size_t)n;
  }
  if (rv == WR_OK && (fchmod(fd, mode) != 0 || fsync(fd) != 0)) rv = WR_ERR_IO;
  if (close(fd) != 0 && rv == WR_OK) rv = WR_ERR_IO;
  if (rv == WR_OK) {
    /* link() fails if the target exists, which gives exclusive creation
     * without a window where a half-written file is visible. */
    if (exclusive) {
      if (link(tmp, path) != 0) rv = errno == EEXIST ? WR_ERR_EXISTS : WR_ERR_IO;
      unlink(tmp);
    } else if (rename(tmp, path) != 0) {
      rv = WR_ERR_IO;
    }
  }
  if (rv != WR_OK) unlink(tmp);
  free(tmp);
  return rv;
}

int wr_file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

char *wr_path_expand(const char *path) {
  if (path[0] == '~' && (path[1] == '/' || path[1] == '\0')) {
    const char *home = getenv("HOME");
    if (!home) home = "/";
    size_t n = strlen(home) + strlen(path);
    char *out = wr_xmalloc(n + 1);
    snprintf(out, n + 1, "%s%s", home, path + 1);
    return out;
  }
  return wr_xstrdup(path);
}

int wr_mkdirs(const char *path, mode_t mode) {
  char *p = wr_xstrdup(path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, mode) != 0 && errno != EEXIST) goto fail;
    *s = '/';
  }
  if (mkdir(p, mode) != 0 && errno != EEXIST) goto fail;
  free(p);
  return WR_OK;
fail:
  free(p);
  return WR_ERR_IO;
}
