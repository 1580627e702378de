/*
 * template.c - renders per second of a campaign's templates, against memcpy.
 *
 *   template [ROUNDS [SECONDS_PER_ROUND]]      (defaults: 5 rounds, 0.5 s)
 *
 * A 2 KB template pair (HTML about 1.5 KB, text about 0.5 KB) with ten
 * variables: plain (name, email, unsubscribe_url, campaign.name), a
 * default (first_name | default), attributes (city, plan), a nested path
 * (attributes.address.zip), a section ({{# attributes.vip }}) and an
 * unescaped one.  One render is tpl_render of the HTML and then of the text
 * into one reused buffer, with attributes parsed once (as the renderer
 * sees them).  The baseline copies the same number of bytes with memcpy in
 * the same loop shape.  Rounds alternate baseline and render; the ratio
 * printed is the median of the rounds' ratios.
 *
 * A third figure, "render+parse", adds what delivery does per message
 * before rendering: json_loads of the recipient's attribute text.
 *
 * The figures are per render of the pair (one message's bodies).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/util.h"
#include "template/template.h"

#include "bench_util.h"

#define FILLER                                                                                     \
    "Our autumn release brings faster imports, cleaner reports and a calmer inbox. "               \
    "We rebuilt the scheduler so that large lists go out steadily, and every message "             \
    "now carries a one-click unsubscribe link that works in every major client. "

static const char html_src[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>{{ campaign.name }}</title></head>"
    "<body style=\"font-family:sans-serif;color:#222\">\n"
    "<p>Hello {{ first_name | default:\"friend\" }},</p>\n"
    "<p>" FILLER "</p>\n"
    "<p>We are writing to {{ email }} because you signed up in {{ attributes.city }} "
    "on the <b>{{ attributes.plan }}</b> plan.</p>\n"
    "{{# attributes.vip }}<p style=\"background:#ffe\">As a VIP member you get early "
    "access: reply to this message and our team will set it up for you.</p>{{/ attributes.vip }}\n"
    "<p>" FILLER "</p>\n"
    "<p>" FILLER "</p>\n"
    "<p>Your parcel goes to postcode {{ attributes.address.zip }}.</p>\n"
    "<p>" FILLER "</p>\n"
    "<p>Regards,<br>{{{ attributes.signature }}}</p>\n"
    "<p style=\"font-size:small\">Sent to {{ name }}. "
    "<a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>\n"
    "</body></html>\n";

static const char text_src[] =
    "Hello {{ first_name | default:\"friend\" }},\n\n" FILLER "\n\n" FILLER "\n\n"
    "Plan: {{ attributes.plan }}\n"
    "-- {{ campaign.name }}\nUnsubscribe: {{ unsubscribe_url }}\n";

static const char attrs_text[] =
    "{\"city\":\"Lisbon\",\"plan\":\"pro\",\"vip\":\"yes\",\"score\":\"712\","
    "\"address\":{\"zip\":\"1100-148\",\"street\":\"Rua Augusta 12\"},"
    "\"signature\":\"<i>The Acme team</i>\"}";

static struct tpl *
compile(const char *src, enum tpl_ctx ctx)
{
    struct tpl *t = NULL;
    struct tpl_error e;

    if (tpl_compile(src, strlen(src), ctx, 1 << 20, 1 << 20, &t, &e) != MC_ERR_OK)
        bench_die("template: line %d column %d: %s", e.line, e.column, e.message);
    return t;
}

/* Keeps the compiler from dropping a copy nobody reads. */
static inline void
clobber(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

static void
render_pair(const struct tpl *h, const struct tpl *t, const struct tpl_data *d, struct buf *out)
{
    buf_reset(out);
    if (tpl_render(h, d, out) != MC_ERR_OK || tpl_render(t, d, out) != MC_ERR_OK)
        bench_die("render failed");
    clobber(out->data);
}

int
main(int argc, char **argv)
{
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 5;
    double per_round = argc > 2 ? strtod(argv[2], NULL) : 0.5;
    struct tpl *html = compile(html_src, TPL_HTML), *text = compile(text_src, TPL_TEXT);
    struct tpl_data d = {
        .email = "ada.lovelace@example.com",
        .name = "Ada Lovelace",
        .unsubscribe_url = "https://mail.example.com/u/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"
                           "Hh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-P0A",
        .campaign_name = "Autumn release",
        .campaign_id = "3c2b1a09-8f7e-4d6c-9b5a-493827160504",
    };
    struct buf out;
    char *src, *dst;
    size_t size;
    long iters;
    double ratios[64], r_render[64], r_base[64], r_parse[64];

    if (rounds < 1 || rounds > 64 || per_round <= 0)
        bench_die("usage: template [ROUNDS(1-64) [SECONDS_PER_ROUND]]");
    d.attributes = json_loads(attrs_text, 0, NULL);
    buf_init(&out, 0);
    render_pair(html, text, &d, &out);
    size = out.len;
    src = malloc(size);
    dst = malloc(size);
    if (src == NULL || dst == NULL)
        bench_die("out of memory");
    memcpy(src, out.data, size);

    /* Calibrate: iterations of render that take about per_round seconds. */
    {
        double t0 = bench_now();
        long k = 0;
        while (bench_now() - t0 < 0.1) {
            for (int i = 0; i < 100; i++)
                render_pair(html, text, &d, &out);
            k += 100;
        }
        iters = (long)((double)k * per_round / (bench_now() - t0));
        if (iters < 1000)
            iters = 1000;
    }

    for (int r = 0; r < (int)rounds; r++) {
        /* memcpy is so fast that it needs many more iterations to time well. */
        long biters = iters * 100;
        double t0 = bench_now(), tb;

        for (long i = 0; i < biters; i++) {
            memcpy(dst, src, size);
            clobber(dst);
        }
        tb = bench_now() - t0;
        t0 = bench_now();
        for (long i = 0; i < iters; i++)
            render_pair(html, text, &d, &out);
        double tr = bench_now() - t0;
        t0 = bench_now();
        for (long i = 0; i < iters / 4; i++) {
            json_t *a = json_loads(attrs_text, 0, NULL);
            struct tpl_data dd = d;
            dd.attributes = a;
            render_pair(html, text, &dd, &out);
            json_decref(a);
        }
        double tp = bench_now() - t0;
        r_base[r] = (double)biters / tb;
        r_render[r] = (double)iters / tr;
        r_parse[r] = (double)(iters / 4) / tp;
        ratios[r] = r_render[r] / r_base[r];
        printf("round %d: memcpy %.0f/s  render %.0f/s  render+parse %.0f/s  ratio %.5f\n", r + 1,
               r_base[r], r_render[r], r_parse[r], ratios[r]);
    }

    /* Medians (insertion sort: at most 64 values). */
    double *all[] = {ratios, r_render, r_base, r_parse};
    for (int k = 0; k < 4; k++)
        for (int i = 1; i < (int)rounds; i++)
            for (int j = i; j > 0 && all[k][j - 1] > all[k][j]; j--) {
                double x = all[k][j];
                all[k][j] = all[k][j - 1];
                all[k][j - 1] = x;
            }
    printf("output_bytes: %zu (html+text, %zu bytes of template)\n", size,
           strlen(html_src) + strlen(text_src));
    printf("memcpy_per_s: %.0f\n", r_base[rounds / 2]);
    printf("render_per_s: %.0f\n", r_render[rounds / 2]);
    printf("render_us: %.3f\n", 1e6 / r_render[rounds / 2]);
    printf("render_plus_attr_parse_per_s: %.0f\n", r_parse[rounds / 2]);
    printf("ratio_render_over_memcpy: %.5f (median of %ld rounds)\n", ratios[rounds / 2], rounds);
    json_decref(d.attributes);
    buf_cleanup(&out);
    tpl_free(html);
    tpl_free(text);
    free(src);
    free(dst);
    return 0;
}
