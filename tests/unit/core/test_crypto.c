/*
 * test_crypto.c - ids, hashes and constant-time comparison.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mctest.h"

#include "core/crypto.h"

static void
test_uuid_shape_and_uniqueness(void **state)
{
    char a[MC_UUID_LEN + 1], b[MC_UUID_LEN + 1];

    (void)state;
    crypto_uuid(a);
    crypto_uuid(b);
    assert_int_equal(strlen(a), 36);
    assert_true(crypto_uuid_valid(a));
    assert_int_equal(a[14], '4');                   /* version 4 */
    assert_non_null(strchr("89ab", a[19]));         /* RFC 4122 variant */
    assert_string_not_equal(a, b);
}

/* Version 7: valid, version and variant bits set, the leading 48 bits are
 * the current Unix milliseconds, and 10,000 ids in a row sort strictly in
 * the order they were made (bulk inserts append to the index). */
static void
test_uuid7_time_ordered(void **state)
{
    char prev[MC_UUID_LEN + 1], cur[MC_UUID_LEN + 1];
    struct timespec ts;
    unsigned long long ms, got;
    char hex[13];

    (void)state;
    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
    crypto_uuid7(prev);
    assert_true(crypto_uuid_valid(prev));
    assert_int_equal(prev[14], '7');
    assert_non_null(strchr("89ab", prev[19]));
    memcpy(hex, prev, 8);
    memcpy(hex + 8, prev + 9, 4);
    hex[12] = '\0';
    got = strtoull(hex, NULL, 16);
    assert_true(got >= ms && got < ms + 5000);
    for (int i = 0; i < 10000; i++) {
        crypto_uuid7(cur);
        assert_true(crypto_uuid_valid(cur));
        assert_true(strcmp(prev, cur) < 0);
        memcpy(prev, cur, sizeof(cur));
    }
}

/* A forked child draws fresh random bits for its ids: the per-thread pool
 * it inherited would otherwise give it the parent's next ones. */
static void
test_uuid7_fork_draws_afresh(void **state)
{
    char parent[MC_UUID_LEN + 1], child[MC_UUID_LEN + 1] = "";
    int fds[2], status;
    pid_t pid;

    (void)state;
    crypto_uuid7(parent); /* the pool is filled */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        crypto_uuid7(child);
        _exit(write(fds[1], child, MC_UUID_LEN) == MC_UUID_LEN ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], child, MC_UUID_LEN), MC_UUID_LEN);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    crypto_uuid7(parent);
    /* The last 12 hex digits are random bits only. */
    assert_true(crypto_uuid_valid(child));
    assert_string_not_equal(parent + 24, child + 24);
}

/* RFC 4231, test case 2. */
static void
test_hmac_sha256_known_vector(void **state)
{
    const char *data = "what do ya want for nothing?";
    unsigned char md[32];
    char hex[65];

    (void)state;
    crypto_hmac_sha256("Jefe", 4, data, strlen(data), md);
    crypto_hex(md, sizeof(md), hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/* RFC 4231 test case 6: a key longer than the block is hashed first. */
static void
test_hmac_sha256_long_key(void **state)
{
    const char *data = "Test Using Larger Than Block-Size Key - Hash Key First";
    unsigned char key[131], md[32];
    char hex[65];

    (void)state;
    memset(key, 0xaa, sizeof(key));
    crypto_hmac_sha256(key, sizeof(key), data, strlen(data), md);
    crypto_hex(md, sizeof(md), hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void
test_uuid_valid(void **state)
{
    char up[] = "3F2504E0-4F89-41D3-9A0C-0305E82C3301";

    (void)state;
    assert_true(crypto_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c3301"));
    assert_true(crypto_uuid_valid(up));
    crypto_uuid_lower(up);
    assert_string_equal(up, "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    assert_false(crypto_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c330"));
    assert_false(crypto_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c33011"));
    assert_false(crypto_uuid_valid("3f2504e0x4f89-41d3-9a0c-0305e82c3301"));
    assert_false(crypto_uuid_valid("3f2504e0-4f89-41d3-9a0c-0305e82c330g"));
    assert_false(crypto_uuid_valid("' OR 1=1 --"));
}

static void
test_sha256_known_vector(void **state)
{
    char h[65];

    (void)state;
    crypto_sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void
test_equal(void **state)
{
    (void)state;
    assert_true(crypto_equal("abcdef", "abcdef", 6));
    assert_false(crypto_equal("abcdef", "abcdeg", 6));
    assert_false(crypto_equal("xbcdef", "abcdef", 6));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_shape_and_uniqueness),
        cmocka_unit_test(test_uuid7_time_ordered),
        cmocka_unit_test(test_uuid7_fork_draws_afresh),
        cmocka_unit_test(test_hmac_sha256_known_vector),
        cmocka_unit_test(test_hmac_sha256_long_key),
        cmocka_unit_test(test_uuid_valid),
        cmocka_unit_test(test_sha256_known_vector),
        cmocka_unit_test(test_equal),
    };
    return cmocka_run_group_tests_name("core/crypto", tests, NULL, NULL);
}
