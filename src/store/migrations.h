/*
 * migrations.h - the SQL files of migrations/sqlite and migrations/pg,
 * embedded into the binary at build time (scripts/embed_sql.sh writes
 * migrations_gen.c).  Versions are the files' numbers, ascending, with gaps only where a number is reserved for a branch not yet merged.
 */
#ifndef MC_MIGRATIONS_H
#define MC_MIGRATIONS_H

struct migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct migration mc_migrations_sqlite[];
extern const int mc_migrations_sqlite_n;
extern const struct migration mc_migrations_pg[];
extern const int mc_migrations_pg_n;

#endif
