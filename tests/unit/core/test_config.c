/*
 * test_config.c - defaults < file < environment < flags, validation that
 * reports every problem at once, and each limit at its boundary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mctest.h"

#include "core/config.h"

static char path[64];

static int
setup(void **state)
{
    (void)state;
    unsetenv("MAILCAST_LISTEN");
    unsetenv("MAILCAST_DATABASE");
    unsetenv("MAILCAST_HTTP_THREADS");
    unsetenv("MAILCAST_OPERATOR_KEY");
    unsetenv("MAILCAST_PUBLIC_URL");
    snprintf(path, sizeof(path), "/tmp/mc-config-test.%d", (int)getpid());
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    unlink(path);
    return setup(state);
}

static void
write_file(const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void
test_defaults(void **state)
{
    struct config c;
    struct buf e;

    (void)state;
    buf_init(&e, 0);
    assert_int_equal(config_load(&c, NULL, NULL, 0, &e), MC_ERR_OK);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_string_equal(c.database, "sqlite:./var/mailcast.db");
    assert_string_equal(c.public_url, "http://127.0.0.1:8080");
    assert_null(c.operator_key);
    assert_int_equal(e.len, 0);
    config_cleanup(&c);
    buf_cleanup(&e);
}

static void
test_layers(void **state)
{
    struct config_override ov[] = {{"http_threads", "7"}};
    struct config c;
    struct buf e;

    (void)state;
    write_file("# comment\nlisten = 127.0.0.1:9000\nhttp_threads = 3\n"
               "public_url = \"https://mail.example.com/\"\ndatabase=sqlite:/tmp/x.db\n");
    setenv("MAILCAST_LISTEN", "127.0.0.1:9001", 1);
    setenv("MAILCAST_HTTP_THREADS", "5", 1);
    buf_init(&e, 0);
    assert_int_equal(config_load(&c, path, ov, 1, &e), MC_ERR_OK);
    assert_string_equal(c.listen, "127.0.0.1:9001"); /* env beats file */
    assert_int_equal(c.http_threads, 7);             /* flag beats env */
    assert_string_equal(c.database, "sqlite:/tmp/x.db");             /* file beats default */
    assert_string_equal(c.public_url, "https://mail.example.com"); /* trailing slash dropped */
    config_cleanup(&c);
    buf_cleanup(&e);
}

static void
test_every_error_at_once(void **state)
{
    struct config_override ov[] = {{"http_threads", "0"}, {"public_url", "ftp://x"}};
    struct config c;
    struct buf e;

    (void)state;
    write_file("listen = nonsense\nno_such_option = 1\n");
    setenv("MAILCAST_DATABASE", "mysql://x", 1);
    buf_init(&e, 0);
    assert_int_equal(config_load(&c, path, ov, 2, &e), MC_ERR_CONFIG);
    assert_non_null(strstr(e.data, "listen"));
    assert_non_null(strstr(e.data, "no_such_option"));
    assert_non_null(strstr(e.data, "database"));
    assert_non_null(strstr(e.data, "http_threads"));
    assert_non_null(strstr(e.data, "public_url"));
    config_cleanup(&c);
    buf_cleanup(&e);
}

static void
load_one(const char *name, const char *value, mc_err want)
{
    struct config_override ov[] = {{name, value}};
    struct config c;
    struct buf e;

    buf_init(&e, 0);
    assert_int_equal(config_load(&c, NULL, ov, 1, &e), want);
    config_cleanup(&c);
    buf_cleanup(&e);
}

static void
test_boundaries(void **state)
{
    (void)state;
    load_one("http_max_body", "1024", MC_ERR_OK);
    load_one("http_max_body", "1023", MC_ERR_CONFIG);
    load_one("http_max_body", "1073741824", MC_ERR_OK);
    load_one("http_max_body", "1073741825", MC_ERR_CONFIG);
    load_one("http_threads", "1", MC_ERR_OK);
    load_one("http_threads", "256", MC_ERR_OK);
    load_one("http_threads", "257", MC_ERR_CONFIG);
    load_one("db_pool_size", "0", MC_ERR_CONFIG);
    load_one("max_page_size", "1", MC_ERR_OK);
    load_one("listen", "127.0.0.1:65535", MC_ERR_OK);
    load_one("listen", "127.0.0.1:65536", MC_ERR_CONFIG);
    load_one("listen", "127.0.0.1:0", MC_ERR_CONFIG);
    load_one("listen", "[::1]:8080", MC_ERR_OK);
    load_one("operator_key", "short", MC_ERR_CONFIG);
    load_one("operator_key", "exactly-24-characters-ok", MC_ERR_OK);
    load_one("log_level", "loud", MC_ERR_CONFIG);
    load_one("database", "sqlite:", MC_ERR_CONFIG);
    load_one("database", "postgres://u@h/db", MC_ERR_OK);
}

static void
test_flag_names(void **state)
{
    (void)state;
    assert_string_equal(config_flag_option("--listen"), "listen");
    assert_string_equal(config_flag_option("--public-url"), "public_url");
    assert_string_equal(config_flag_option("--http-max-body=5"), "http_max_body");
    assert_null(config_flag_option("--nope"));
    assert_null(config_flag_option("listen"));
}

static void
test_dump_hides_secrets(void **state)
{
    struct config_override ov[] = {{"operator_key", "a-very-secret-operator-key-123"},
                                   {"database", "postgres://user:pw@host/db"}};
    struct config c;
    struct buf e, out;

    (void)state;
    buf_init(&e, 0);
    buf_init(&out, 0);
    assert_int_equal(config_load(&c, NULL, ov, 2, &e), MC_ERR_OK);
    config_dump(&c, &out);
    assert_null(strstr(out.data, "a-very-secret"));
    assert_null(strstr(out.data, "pw@"));
    assert_non_null(strstr(out.data, "listen = 127.0.0.1:8080"));
    config_cleanup(&c);
    buf_cleanup(&e);
    buf_cleanup(&out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_error_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flag_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_hides_secrets, setup, teardown),
    };
    return cmocka_run_group_tests_name("core/config", tests, NULL, NULL);
}
