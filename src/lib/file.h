/* Small file helpers for reading config, credentials and certificates. */
#ifndef WR_FILE_H
#define WR_FILE_H
#include <stddef.h>
#include <sys/types.h>

/* Reads all of |path| (at most |max| bytes) into a new NUL-terminated buffer.
 * Returns 0, WR_ERR_IO (errno set; ENOENT for a missing file) or
 * WR_ERR_LIMIT if the file is larger than |max|. The caller frees *out. */
int wr_file_read(const char *path, size_t max, char **out, size_t *out_len);
/* Writes |len| bytes to |path| atomically (temp file + rename) with |mode|.
 * With |exclusive|, fails with WR_ERR_EXISTS if |path| exists. */
int wr_file_write(const char *path, const void *data, size_t len, mode_t mode, int exclusive);
/* 1 if |path| exists. */
int wr_file_exists(const char *path);
/* Expands a leading "~/" using $HOME. Returns a new string. */
char *wr_path_expand(const char *path);
/* mkdir -p with |mode| for created directories. Returns 0 or WR_ERR_IO. */
int wr_mkdirs(const char *path, mode_t mode);

#endif
