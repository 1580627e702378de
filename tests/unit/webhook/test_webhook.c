/*
 * test_webhook.c - Standard Webhooks signatures (the specification's
 * published example), secrets, the SSRF guard's address ranges and URL
 * rules, and the retry schedule's parser.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "mctest.h"

#include "webhook/webhook.h"

static void
test_sign_published_example(void **state)
{
    char sig[WEBHOOK_SIG_LEN];

    (void)state;
    assert_int_equal(webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                  "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                                  "{\"test\": 2432232314}", sig),
                     MC_ERR_OK);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* Any change of id, time or body changes it. */
    assert_int_equal(webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                  "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331,
                                  "{\"test\": 2432232314}", sig),
                     MC_ERR_OK);
    assert_string_not_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert_int_equal(webhook_sign("whsec_!!!!", "a", 1, "{}", sig), MC_ERR_INVALID);
    assert_int_equal(webhook_sign("whsec_", "a", 1, "{}", sig), MC_ERR_INVALID);
}

static void
test_secret_new(void **state)
{
    char *a = webhook_secret_new(), *b = webhook_secret_new();
    char sig[WEBHOOK_SIG_LEN];

    (void)state;
    assert_true(strncmp(a, "whsec_", 6) == 0);
    assert_int_equal(strlen(a), 6 + 32);
    assert_string_not_equal(a, b);
    assert_int_equal(webhook_sign(a, "id", 1, "{}", sig), MC_ERR_OK);
    free(a);
    free(b);
}

static bool
allowed(const struct webhook_guard *g, const char *ip)
{
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};

    if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1)
        return webhook_addr_allowed(g, (struct sockaddr *)&s4);
    assert_int_equal(inet_pton(AF_INET6, ip, &s6.sin6_addr), 1);
    return webhook_addr_allowed(g, (struct sockaddr *)&s6);
}

static void
test_guard_ranges(void **state)
{
    static const char *const refused[] = {
        "127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "169.254.169.254", "100.64.0.1", "100.127.255.255", "0.0.0.0", "224.0.0.1",
        "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1", "::", "::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "fe80::1",
        "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1", "2002:7f00:0001::1",
        "64:ff9b:1::7f00:1", "64:ff9b:1:2::8.8.8.8", "::ffff:0:127.0.0.1", "::ffff:0:10.0.0.1",
    };
    static const char *const ok[] = {"93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1",
                                     "2606:4700::1111", "::ffff:8.8.8.8", "1.1.1.1",
                                     "::ffff:0:8.8.8.8"};
    struct config cfg = {0};
    struct webhook_guard g;

    (void)state;
    assert_int_equal(webhook_guard_init(&g, &cfg), MC_ERR_OK);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (allowed(&g, refused[i]))
            fail_msg("%s was allowed", refused[i]);
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!allowed(&g, ok[i]))
            fail_msg("%s was refused", ok[i]);
    /* The operator's CIDRs open exactly what they say. */
    cfg.webhook_allow_cidr = "127.0.0.1/32, 10.9.0.0/16";
    assert_int_equal(webhook_guard_init(&g, &cfg), MC_ERR_OK);
    assert_true(allowed(&g, "127.0.0.1"));
    assert_true(allowed(&g, "::ffff:127.0.0.1"));
    assert_false(allowed(&g, "127.0.0.2"));
    assert_true(allowed(&g, "10.9.200.1"));
    assert_false(allowed(&g, "10.10.0.1"));
    cfg.webhook_allow_cidr = "127.0.0.1/33";
    assert_int_equal(webhook_guard_init(&g, &cfg), MC_ERR_CONFIG);
    cfg.webhook_allow_cidr = "localhost";
    assert_int_equal(webhook_guard_init(&g, &cfg), MC_ERR_CONFIG);
}

static void
test_guard_urls(void **state)
{
    struct config cfg = {0};
    struct webhook_guard g;
    const char *why = NULL;

    (void)state;
    assert_int_equal(webhook_guard_init(&g, &cfg), MC_ERR_OK);
    assert_true(webhook_url_check(&g, "https://hooks.example.com/x?a=1", false, &why));
    assert_false(webhook_url_check(&g, "http://hooks.example.com/x", false, &why));
    assert_false(webhook_url_check(&g, "ftp://hooks.example.com/x", false, &why));
    assert_false(webhook_url_check(&g, "file:///etc/passwd", false, &why));
    assert_false(webhook_url_check(&g, "https://user:pw@hooks.example.com/", false, &why));
    assert_false(webhook_url_check(&g, "https://user@hooks.example.com/", false, &why));
    assert_false(webhook_url_check(&g, "hooks.example.com/x", false, &why));
    assert_false(webhook_url_check(&g, "https://", false, &why));
    assert_false(webhook_url_check(&g, "https://hooks.example.com:0/x", false, &why));
    assert_true(webhook_url_check(&g, "https://hooks.example.com:8443/x", false, &why));
    /* Resolved: loopback names and literals refused without the allow list. */
    assert_false(webhook_url_check(&g, "https://localhost/x", true, &why));
    assert_false(webhook_url_check(&g, "https://127.0.0.1/x", true, &why));
    assert_false(webhook_url_check(&g, "https://[::1]/x", true, &why));
    assert_false(webhook_url_check(&g, "https://[::ffff:127.0.0.1]/x", true, &why));
    cfg.webhook_allow_http = 1;
    cfg.webhook_allow_cidr = "127.0.0.0/8,::1/128";
    assert_int_equal(webhook_guard_init(&g, &cfg), MC_ERR_OK);
    assert_true(webhook_url_check(&g, "http://127.0.0.1:8080/x", true, &why));
    assert_true(webhook_url_check(&g, "http://localhost:8080/x", true, &why));
}

static void
test_schedule_parse(void **state)
{
    int64_t s[4];

    (void)state;
    assert_int_equal(webhook_schedule_parse("5,300,1800", s, 4), 3);
    assert_int_equal(s[2], 1800);
    assert_int_equal(webhook_schedule_parse("5,,6", s, 4), -1);
    assert_int_equal(webhook_schedule_parse("5,", s, 4), -1);
    assert_int_equal(webhook_schedule_parse("", s, 4), -1);
    assert_int_equal(webhook_schedule_parse("x", s, 4), -1);
    assert_int_equal(webhook_schedule_parse("1,2,3,4,5", s, 4), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_published_example),
        cmocka_unit_test(test_secret_new),
        cmocka_unit_test(test_guard_ranges),
        cmocka_unit_test(test_guard_urls),
        cmocka_unit_test(test_schedule_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
