/*
 * outbox.c - the dir: relay (see outbox.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "outbox.h"

/* mkdir -p */
static int
make_dirs(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);

    if (n >= sizeof(path))
        return -1;
    memcpy(path, dir, n + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

mc_err
outbox_open(const char *dir)
{
    struct stat sb;

    if (make_dirs(dir) != 0) {
        log_error("event=outbox error=\"cannot create %s: %s\"", dir, strerror(errno));
        return MC_ERR_IO;
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(dir, W_OK) != 0) {
        log_error("event=outbox error=\"%s is not a writable directory\"", dir);
        return MC_ERR_IO;
    }
    return MC_ERR_OK;
}

mc_err
outbox_write(const char *dir, const char *name, const char *data, size_t len)
{
    char tmp[4096], final[4096];
    int fd = -1, dfd = -1;
    mc_err err = MC_ERR_IO;
    size_t off = 0;

    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    snprintf(final, sizeof(final), "%s/%s.eml", dir, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        goto out;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out;
        off += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, final) != 0)
        goto out;
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        fsync(dfd);
    err = MC_ERR_OK;
out:
    if (err != MC_ERR_OK) {
        log_error("event=outbox error=\"cannot write %s: %s\"", final, strerror(errno));
        unlink(tmp);
    }
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return err;
}
