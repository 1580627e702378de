/*
 * replay.c - a main() for libFuzzer targets without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on every regular file named on the command
 * line or found (not recursively) in a directory named there.  CI builds
 * it with gcc and the sanitizers to replay each seed corpus.
 *
 *   fuzz_reply_replay tests/fuzz/corpus/reply [more dirs or files]
 *
 * Exit status: 0 when every input ran (and at least one did); 1 when an
 * argument or a file cannot be read, or there was no input at all; a
 * crash or sanitizer report ends the process with its own non-zero status
 * (ASan and UBSan with -fno-sanitize-recover abort).
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs the target on one file; false when it cannot be read. */
static bool
run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t len = 0, cap = 0, n;
    bool ok = false;

    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return false;
    }
    for (;;) {
        if (len == cap) {
            uint8_t *p;
            cap = cap ? cap * 2 : 4096;
            p = realloc(data, cap);
            if (p == NULL) {
                fprintf(stderr, "replay: %s: out of memory\n", path);
                goto out;
            }
            data = p;
        }
        n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "replay: %s: read error\n", path);
        goto out;
    }
    /* A copy of exactly len bytes, so ASan catches any read past the input. */
    {
        uint8_t *exact = malloc(len ? len : 1);
        if (exact == NULL)
            goto out;
        if (len)
            memcpy(exact, data, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    ok = true;
out:
    free(data);
    fclose(f);
    return ok;
}

int
main(int argc, char **argv)
{
    long ran = 0;
    bool ok = true;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 1;
    }
    for (int a = 1; a < argc; a++) {
        struct stat st;
        DIR *d;
        struct dirent *e;

        if (stat(argv[a], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[a], strerror(errno));
            ok = false;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[a]))
                ran++;
            else
                ok = false;
            continue;
        }
        d = opendir(argv[a]);
        if (d == NULL) {
            fprintf(stderr, "replay: %s: %s\n", argv[a], strerror(errno));
            ok = false;
            continue;
        }
        while ((e = readdir(d)) != NULL) {
            char *path;
            size_t plen = strlen(argv[a]) + strlen(e->d_name) + 2;

            if (e->d_name[0] == '.')
                continue;
            path = malloc(plen);
            if (path == NULL) {
                ok = false;
                break;
            }
            snprintf(path, plen, "%s/%s", argv[a], e->d_name);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(path))
                    ran++;
                else
                    ok = false;
            }
            free(path);
        }
        closedir(d);
    }
    printf("replay: %ld inputs run%s\n", ran, ok ? "" : ", some could not be read");
    return ok && ran > 0 ? 0 : 1;
}
