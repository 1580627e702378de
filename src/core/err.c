/*
 * err.c - lookups into the error table (err.def).
 */
#include "err.h"

struct errinfo {
    int num;
    int http;
    const char *name;
    const char *code;
    const char *msg;
};

static const struct errinfo errtab[] = {
#define XX(name, num, http, code, msg) {num, http, #name, code, msg},
#include "err.def"
#undef XX
};

static const struct errinfo *
lookup(mc_err e)
{
    for (unsigned i = 0; i < sizeof(errtab) / sizeof(errtab[0]); i++)
        if (errtab[i].num == (int)e)
            return &errtab[i];
    return &errtab[MC_ERR_INTERNAL];
}

const char *
mc_err_str(mc_err e)
{
    return lookup(e)->msg;
}

const char *
mc_err_code(mc_err e)
{
    return lookup(e)->code;
}

int
mc_err_http(mc_err e)
{
    return lookup(e)->http;
}

const char *
mc_err_name(mc_err e)
{
    return lookup(e)->name;
}
