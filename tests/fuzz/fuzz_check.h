/*
 * fuzz_check.h - what every fuzz target shares: CHECK, an invariant that
 * aborts (so libFuzzer and the replay report it) and is never compiled out.
 */
#ifndef MC_FUZZ_CHECK_H
#define MC_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/* An invariant of the parser; unlike assert, never compiled out. */
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
