"""Campaign templates: compile errors reported at save time (field, line,
column), and the preview endpoint, which renders subject, html and text for
one recipient exactly as they would be sent: variables, names derived from
the full name, attributes (nested), sections, defaults, escaping per
context, the unsubscribe link, and no re-expansion of substituted values."""

import pytest

from campaignhelp import (NIL_UUID, NO_DELIVERY, PREVIEW_FIELDS, Tenant, campaign_body,
                          decode_token, missing_id)
from harness import error_of, invalid_field


# The shared module server (conftest.py), without delivery.
SERVER_ARGS = NO_DELIVERY

PUBLIC = "https://mail.example.test"


def campaign(t, subject="Subject", html=None, text=None, **fields):
    body = campaign_body(subject=subject, html_body=html, text_body=text, **fields)
    if html is None and text is None:
        body["text_body"] = "x"
    r = t.post_campaign(body)
    assert r.status_code == 201, r.text
    return r.json()


def preview(t, c, body, headers=None):
    r = t.preview(c["id"], body, headers=headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) == PREVIEW_FIELDS, got
    return got


def render(t, html=None, text=None, subject="S", **who):
    """Renders the templates for an ad-hoc recipient; returns the preview."""
    c = campaign(t, subject=subject, html=html, text=text)
    who.setdefault("email", "ada@example.com")
    return preview(t, c, who)


# ---- compile errors ----

COMPILE_ERRORS = [
    # field, template, line, column, a word of the message
    ("html_body", "<h1>\nHey {{nmae}}</h1>", 2, 5, "nmae"),
    ("html_body", "{{ first_nme }}", 1, 1, "first_nme"),
    ("html_body", "ok\nok\n\tthen {{bad}}", 3, 7, "bad"),
    ("html_body", "{{attributes}}", 1, 1, "unknown"),
    ("html_body", "{{attributes.}}", 1, 1, "unknown"),
    ("html_body", "{{attributes..x}}", 1, 1, "unknown"),
    ("html_body", "{{campaign.nmae}}", 1, 1, "unknown"),
    ("html_body", "{{campaign}}", 1, 1, "unknown"),
    ("html_body", "{{}}", 1, 1, "variable"),
    ("html_body", "{{ name extra }}", 1, 1, "unexpected"),
    ("html_body", "Hello {{name", 1, 7, "unclosed"),
    ("html_body", "Hello {{{name}}", 1, 7, "unclosed"),
    ("html_body", "a\n{{#name}}\nopen", 2, 1, "never closed"),
    ("html_body", "{{#name}}x{{/email}}", 1, 11, "different"),
    ("html_body", "x{{/name}}", 1, 2, "not opened"),
    ("html_body", "{{#attributes.a}}{{/attributes.b}}", 1, 18, "different"),
    ("html_body", "{{^name}}x", 1, 1, "never closed"),
    ("html_body", "{{#name | default:\"x\"}}{{/name}}", 1, 1, "unexpected"),
    ("html_body", "{{#name}}" * 65 + "{{/name}}" * 65, 1, 9 * 64 + 1, "deep"),
    ("text_body", "Hi {{first_name | default:friend}}", 1, 4, "quoted"),
    ("text_body", "Hi {{first_name | upper}}", 1, 4, "default"),
    ("text_body", "Hi\n  {{first_name | default:\"friend}}", 2, 3, "unterminated"),
    ("text_body", "line\n\n{{ unsubscribe }}", 3, 1, "unsubscribe"),
    ("subject", "Hi {{nmae}}", 1, 4, "nmae"),
    ("subject", "{{#name}}Hi", 1, 1, "never closed"),
    ("subject", "Hi {{name", 1, 4, "unclosed"),
]


@pytest.mark.parametrize("field,src,line,column,word", COMPILE_ERRORS,
                         ids=lambda x: repr(x)[:40] if isinstance(x, str) else str(x))
def test_compile_error_on_create(server, field, src, line, column, word):
    t = Tenant(server)
    body = campaign_body(**{field: src})
    err = invalid_field(t.post_campaign(body), field)
    assert (err["line"], err["column"]) == (line, column), err
    assert word in err["message"], err
    assert f"line {line}, column {column}" in err["message"], err
    assert t.listing()["total"] == 0


@pytest.mark.parametrize("field,src,line,column,word", COMPILE_ERRORS[::3],
                         ids=lambda x: repr(x)[:40] if isinstance(x, str) else str(x))
def test_compile_error_on_update(server, field, src, line, column, word):
    t = Tenant(server)
    c = t.create()
    err = invalid_field(t.put(c["id"], {field: src}), field)
    assert (err["line"], err["column"]) == (line, column), err
    assert word in err["message"]
    assert t.get(c["id"]) == c


def test_the_brief_example(server):
    """An unknown variable {{nmae}} at line 2, column 5 of html_body."""
    t = Tenant(server)
    r = t.post_campaign(campaign_body(html_body="<p>Hello</p>\n<p> {{nmae}}</p>"))
    err = invalid_field(r, "html_body")
    assert (err["line"], err["column"]) == (2, 5)
    assert set(err) == {"code", "message", "field", "line", "column"}


def test_first_bad_field_is_reported(server):
    t = Tenant(server)
    r = t.post_campaign(campaign_body(subject="{{a}}", html_body="{{b}}", text_body="{{c}}"))
    err = invalid_field(r, "subject")
    r = t.post_campaign(campaign_body(html_body="ok", text_body="\n\n  {{c}}"))
    err = invalid_field(r, "text_body")
    assert (err["line"], err["column"]) == (3, 3)


VALID_TEMPLATES = [
    "plain text, no tags",
    "function() { return {a: 1}; } and } alone and { alone",
    "{{ name }}{{name}}{{\tname\t}}",
    "{{{name}}} {{{ attributes.x }}}",
    "{{! a comment with {braces} }}after",
    "{{#attributes.list}}{{#name}}{{^email}}{{/email}}{{/name}}{{/attributes.list}}",
    "{{first_name | default:\"\"}}{{last_name|default:\"x y\"}}",
    "{{attributes.a-b.c_d.E9}}",
    "{{unsubscribe_url}} {{campaign.name}} {{campaign.id}} {{email}}",
    "Ünïcode ✓ {{name}} 日本語",
]


@pytest.mark.parametrize("src", VALID_TEMPLATES)
def test_valid_templates_compile_in_every_field(server, src):
    t = Tenant(server)
    c = t.create(subject=src, html_body=src, text_body=src)
    assert (c["subject"], c["html_body"], c["text_body"]) == (src, src, src)


def test_template_size_limit(server_factory):
    srv = server_factory(args=NO_DELIVERY + ["--template-max", "1024"])
    t = Tenant(srv)
    c = t.create(html_body="x" * 1024)
    assert len(c["html_body"]) == 1024
    invalid_field(t.post_campaign(campaign_body(html_body="x" * 1025)), "html_body")
    invalid_field(t.post_campaign(campaign_body(text_body="y" * 1025)), "text_body")


# ---- preview: variables ----


def test_preview_basic_variables(server):
    t = Tenant(server)
    c = campaign(t, subject="Hi {{name}} <{{email}}>",
                 html="<p>{{email}}|{{name}}|{{first_name}}|{{last_name}}</p>"
                      "<i>{{campaign.name}}</i><u>{{campaign.id}}</u>",
                 text="{{campaign.name}} / {{campaign.id}} / {{email}}",
                 name="Spring news")
    got = preview(t, c, {"email": "ada@example.com", "name": "Ada Lovelace"})
    assert got["to"] == "ada@example.com"
    assert got["subject"] == "Hi Ada Lovelace <ada@example.com>"
    assert got["html"] == (f"<p>ada@example.com|Ada Lovelace|Ada|Lovelace</p>"
                           f"<i>Spring news</i><u>{c['id']}</u>")
    assert got["text"] == f"Spring news / {c['id']} / ada@example.com"


@pytest.mark.parametrize("name,first,last", [
    ("Ada Lovelace", "Ada", "Lovelace"),
    ("Ada", "Ada", ""),
    ("Ada King Lovelace", "Ada", "King Lovelace"),
    (None, "", ""),
    ("", "", ""),
])
def test_names_derived_from_the_full_name(server, name, first, last):
    t = Tenant(server)
    body = {"email": "x@example.com"}
    if name is not None:
        body["name"] = name
    c = campaign(t, text="[{{first_name}}][{{last_name}}][{{name}}]")
    assert preview(t, c, body)["text"] == f"[{first}][{last}][{name or ''}]"


def test_explicit_first_and_last_names_win(server):
    t = Tenant(server)
    c = campaign(t, text="[{{first_name}}][{{last_name}}]")
    got = preview(t, c, {"email": "x@example.com", "name": "Augusta Ada King",
                         "first_name": "Ada", "last_name": "Lovelace"})
    assert got["text"] == "[Ada][Lovelace]"
    got = preview(t, c, {"email": "x@example.com", "name": "Augusta Ada King",
                         "first_name": "Ada"})
    assert got["text"] == "[Ada][Ada King]"


def test_attributes_scalars_and_nested_paths(server):
    t = Tenant(server)
    c = campaign(t, text="{{attributes.city}}|{{attributes.address.street.name}}|"
                         "{{attributes.n}}|{{attributes.x}}|{{attributes.yes}}|{{attributes.no}}|"
                         "{{attributes.missing}}|{{attributes.address.missing}}|"
                         "{{attributes.city.deeper}}|{{attributes.nul}}|[{{attributes.arr}}]|"
                         "{{attributes.Case}}|{{attributes.a-b}}|{{attributes.zero}}")
    attrs = {"city": "Paris", "address": {"street": {"name": "Rue de Rivoli"}}, "n": 42,
             "x": 1.5, "yes": True, "no": False, "nul": None, "arr": [1, 2],
             "Case": "upper", "a-b": "dash", "zero": 0}
    got = preview(t, c, {"email": "x@example.com", "attributes": attrs})
    assert got["text"] == ("Paris|Rue de Rivoli|42|1.5|true|false|||||[]|upper|dash|0")


def test_attributes_are_case_sensitive(server):
    t = Tenant(server)
    c = campaign(t, text="[{{attributes.city}}][{{attributes.City}}]")
    got = preview(t, c, {"email": "x@example.com", "attributes": {"City": "Lyon"}})
    assert got["text"] == "[][Lyon]"


def test_sections_and_inverted_sections(server):
    t = Tenant(server)
    src = ("{{#attributes.vip}}VIP {{/attributes.vip}}"
           "{{^attributes.vip}}regular {{/attributes.vip}}"
           "{{#name}}named:{{first_name}}{{/name}}{{^name}}anonymous{{/name}}"
           "{{#attributes.tags}} tags{{/attributes.tags}}"
           "{{#attributes.profile}} profile:{{attributes.profile.age}}{{/attributes.profile}}")
    c = campaign(t, text=src)

    def r(**body):
        return preview(t, c, {"email": "x@example.com", **body})["text"]

    assert r(name="Ada B", attributes={"vip": True, "tags": ["a"], "profile": {"age": 36}}) == \
        "VIP named:Ada tags profile:36"
    assert r(attributes={"vip": False, "tags": [], "profile": {}}) == "regular anonymous"
    assert r() == "regular anonymous"
    for falsy in (0, "", None, 0.0, [], {}):
        assert r(attributes={"vip": falsy}).startswith("regular"), falsy
    for truthy in (1, "yes", "0", 2.5, [0], {"a": 1}, "false"):
        assert r(attributes={"vip": truthy}).startswith("VIP"), truthy


def test_nested_sections(server):
    t = Tenant(server)
    c = campaign(t, text="{{#attributes.a}}A{{#attributes.b}}B{{^attributes.c}}!c{{/attributes.c}}"
                         "{{/attributes.b}}{{/attributes.a}}.")

    def r(**attrs):
        return preview(t, c, {"email": "x@example.com", "attributes": attrs})["text"]

    assert r(a=1, b=1) == "AB!c."
    assert r(a=1, b=1, c=1) == "AB."
    assert r(a=1) == "A."
    assert r(b=1) == "."


def test_default_filter(server):
    t = Tenant(server)
    c = campaign(t, subject="Hello {{first_name | default:\"friend\"}}",
                 text="Dear {{ first_name|default:\"valued customer\" }}, "
                      "{{attributes.city | default:\"your city\"}}")
    got = preview(t, c, {"email": "x@example.com"})
    assert got["subject"] == "Hello friend"
    assert got["text"] == "Dear valued customer, your city"
    got = preview(t, c, {"email": "x@example.com", "name": "Grace Hopper",
                         "attributes": {"city": "NYC"}})
    assert got["subject"] == "Hello Grace"
    assert got["text"] == "Dear Grace, NYC"
    got = preview(t, c, {"email": "x@example.com", "attributes": {"city": ""}})
    assert got["text"] == "Dear valued customer, your city"


def test_comments_render_nothing(server):
    got = render(Tenant(server), text="a{{! hidden stuff }}b{{!}}c", name="N")
    assert got["text"] == "abc"


# ---- preview: escaping ----

NASTY = "<b>\"Tom\" & 'Jerry'</b>"
NASTY_HTML = "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;"


def test_html_escaping(server):
    t = Tenant(server)
    got = render(t, html="<p>{{name}}</p><p>{{{name}}}</p><p>{{attributes.x}}</p>"
                         "<p>{{{attributes.x}}}</p><p>{{first_name}}</p>",
                 text="{{name}}|{{{name}}}|{{attributes.x}}",
                 subject="{{name}} {{{name}}}",
                 name=NASTY, attributes={"x": "<script>alert(1)</script>"})
    assert got["html"] == (f"<p>{NASTY_HTML}</p><p>{NASTY}</p>"
                           "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
                           "<p><script>alert(1)</script></p>"
                           "<p>&lt;b&gt;&quot;Tom&quot;</p>")
    assert got["text"] == f"{NASTY}|{NASTY}|<script>alert(1)</script>"
    assert got["subject"] == f"{NASTY} {NASTY}"


def test_template_text_itself_is_not_escaped(server):
    got = render(Tenant(server), html="<a href=\"x?a=1&b=2\">'q'</a> {{email}}",
                 email="a&b@example.com")
    assert got["html"] == "<a href=\"x?a=1&b=2\">'q'</a> a&amp;b@example.com"


def test_subject_values_lose_line_breaks(server):
    """No value can inject a header: CR and LF from values become spaces in
    the subject (escaped or raw); the bodies keep them."""
    t = Tenant(server)
    evil = "Ada\r\nBcc: victim@example.com\nX: y\rZ"
    got = render(t, subject="Hi {{attributes.evil}} / {{{attributes.x}}} / {{attributes.x}}"
                            " / {{attributes.none | default:\"d\"}}",
                 html="<p>{{attributes.evil}}</p>", text="{{attributes.evil}}|{{{attributes.x}}}",
                 attributes={"evil": evil, "x": "line1\nline2"})
    assert "\r" not in got["subject"] and "\n" not in got["subject"]
    assert got["subject"] == ("Hi Ada  Bcc: victim@example.com X: y Z / line1 line2 / "
                              "line1 line2 / d")
    assert got["text"] == f"{evil}|line1\nline2"
    assert got["html"] == f"<p>{evil}</p>"


def test_subject_line_breaks_from_a_recipients_attributes(server):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "x@example.com", attributes={"city": "Paris\r\nBcc: a@example.com"})
    c = campaign(t, subject="News for {{attributes.city}}", text="{{attributes.city}}",
                 recipient_list_id=lst["id"])
    got = preview(t, c, {"recipient_id": x["id"]})
    assert got["subject"] == "News for Paris  Bcc: a@example.com"
    assert got["text"] == "Paris\r\nBcc: a@example.com"


@pytest.mark.parametrize("value", ["{{email}}", "{{{unsubscribe_url}}}", "{{#name}}x{{/name}}",
                                   "{{nmae}}", "{{", "}}"])
def test_values_are_never_expanded_again(server, value):
    t = Tenant(server)
    got = render(t, html="<p>{{name}}|{{{attributes.v}}}</p>", text="{{name}}|{{attributes.v}}",
                 subject="{{name}}", name=value, attributes={"v": value})
    assert got["text"] == f"{value}|{value}"
    assert got["subject"] == value
    assert got["html"] == f"<p>{value}|{value}</p>"


# ---- preview: unsubscribe link ----


@pytest.mark.parametrize("public_url", [PUBLIC, PUBLIC + "/"])
def test_unsubscribe_url(server_factory, public_url):
    srv = server_factory(args=NO_DELIVERY + ["--public-url", public_url])
    t = Tenant(srv)
    lst = t.make_list()
    member = t.add(lst["id"], "member@example.com", name="Mem Ber")
    c = campaign(t, html="<a href=\"{{unsubscribe_url}}\">u</a>", text="U: {{unsubscribe_url}}",
                 subject="s {{unsubscribe_url}}", recipient_list_id=lst["id"])

    adhoc = preview(t, c, {"email": "someone@example.com"})
    url = adhoc["unsubscribe_url"]
    assert url.startswith(PUBLIC + "/u/"), url
    token = url[len(PUBLIC + "/u/"):]
    assert len(token) == 87 and all(ch.isalnum() or ch in "-_" for ch in token), token
    assert adhoc["html"] == f"<a href=\"{url}\">u</a>"
    assert adhoc["text"] == f"U: {url}"
    assert adhoc["subject"] == f"s {url}"
    version, tenant, camp, rcpt = decode_token(token)
    assert (tenant, camp, rcpt) == (t.id, c["id"], NIL_UUID)

    mine = preview(t, c, {"recipient_id": member["id"]})
    assert mine["to"] == "member@example.com"
    murl = mine["unsubscribe_url"]
    assert murl.startswith(PUBLIC + "/u/") and murl != url
    assert decode_token(murl[len(PUBLIC + "/u/"):])[1:] == (t.id, c["id"], member["id"])
    assert mine["text"] == f"U: {murl}"
    # The same recipient always gets the same link.
    assert preview(t, c, {"recipient_id": member["id"]})["unsubscribe_url"] == murl


def test_unsubscribe_url_default_public_url(server):
    t = Tenant(server)
    got = render(t, text="{{unsubscribe_url}}")
    assert got["text"] == got["unsubscribe_url"]
    assert got["unsubscribe_url"].startswith("http://127.0.0.1:8080/u/")


# ---- preview: a recipient of the list ----


def test_preview_by_recipient_id(server):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "Grace@Example.com", name="Grace Brewster Hopper",
              attributes={"rank": "Rear Admiral", "ship": {"name": "USS Hopper"}, "n": 7})
    y = t.add(lst["id"], "ada@example.com", name="Augusta Ada King", first_name="Ada",
              last_name="Lovelace")
    c = campaign(t, subject="Hi {{first_name}}", recipient_list_id=lst["id"],
                 html="<p>{{attributes.rank}} {{last_name}} of {{attributes.ship.name}} "
                      "({{attributes.n}})</p>",
                 text="{{email}} {{name}} {{first_name}}/{{last_name}}")
    got = preview(t, c, {"recipient_id": x["id"]})
    assert got["to"] == x["email"]
    assert got["subject"] == "Hi Grace"
    assert got["html"] == "<p>Rear Admiral Brewster Hopper of USS Hopper (7)</p>"
    assert got["text"] == f"{x['email']} Grace Brewster Hopper Grace/Brewster Hopper"
    got = preview(t, c, {"recipient_id": y["id"]})
    assert got["subject"] == "Hi Ada"
    assert got["text"] == "ada@example.com Augusta Ada King Ada/Lovelace"
    # The recipient id wins over ad-hoc fields.
    got = preview(t, c, {"recipient_id": y["id"], "email": "other@example.com", "name": "O"})
    assert got["to"] == "ada@example.com"


def test_preview_recipient_id_in_upper_case(server):
    """Ids are case-insensitive everywhere else (path ids, recipient_list_id);
    so is the preview's recipient_id, on both stores."""
    t = Tenant(server)
    lst = t.make_list()
    y = t.add(lst["id"], "ada@example.com", name="Ada")
    c = campaign(t, text="{{name}}", recipient_list_id=lst["id"])
    got = preview(t, c, {"recipient_id": y["id"].upper()})
    assert (got["to"], got["text"]) == ("ada@example.com", "Ada")


def test_preview_by_recipient_id_after_edits(server):
    """Preview reads the recipient and the templates as they are now."""
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "x@example.com", name="Old Name")
    c = campaign(t, text="{{name}}", recipient_list_id=lst["id"])
    assert preview(t, c, {"recipient_id": x["id"]})["text"] == "Old Name"
    r = server.put(t.rcpt_path(lst["id"], x["id"]), json={"name": "New Name"}, headers=t.h)
    assert r.status_code == 200, r.text
    assert preview(t, c, {"recipient_id": x["id"]})["text"] == "New Name"
    assert t.put(c["id"], {"text_body": "v2 {{first_name}}"}).status_code == 200
    assert preview(t, c, {"recipient_id": x["id"]})["text"] == "v2 New"


def test_recipient_id_must_be_on_the_campaigns_list(server):
    t = Tenant(server)
    other = Tenant(server)
    lst = t.make_list()
    lst2 = t.make_list()
    t.add(lst["id"], "in@example.com")
    elsewhere = t.add(lst2["id"], "elsewhere@example.com")
    theirs_list = other.make_list()
    theirs = other.add(theirs_list["id"], "theirs@example.com", name="Secret Name")
    c = campaign(t, text="{{email}} {{name}}", recipient_list_id=lst["id"])
    for rid in (theirs["id"], elsewhere["id"], missing_id(), "not-a-uuid"):
        r = t.preview(c["id"], {"recipient_id": rid})
        err = invalid_field(r, "recipient_id")
        assert "Secret" not in r.text and "theirs@" not in r.text, err
    # The other tenant's own campaign on its own list does see it.
    oc = campaign(other, text="{{name}}", recipient_list_id=theirs_list["id"])
    assert preview(other, oc, {"recipient_id": theirs["id"]})["text"] == "Secret Name"
    # A campaign without a list has no recipients to preview.
    bare = campaign(t, text="x")
    invalid_field(t.preview(bare["id"], {"recipient_id": elsewhere["id"]}), "recipient_id")


@pytest.mark.parametrize("body,field", [
    ({}, "email"),
    ({"name": "No Email"}, "email"),
    ({"email": None}, "email"),
    ({"email": ""}, "email"),
    ({"email": "not-an-address"}, "email"),
    ({"email": 5}, "email"),
    ({"email": "x@example.com", "attributes": [1]}, "attributes"),
    ({"email": "x@example.com", "attributes": "a=b"}, "attributes"),
    ({"email": "x@example.com", "name": 5}, "name"),
    ({"email": "x@example.com", "first_name": ["a"]}, "first_name"),
    ({"recipient_id": 5}, "recipient_id"),
])
def test_preview_validation(server, body, field):
    t = Tenant(server)
    c = campaign(t, text="x")
    invalid_field(t.preview(c["id"], body), field)


def test_preview_body_errors(server):
    t = Tenant(server)
    c = campaign(t, text="x")
    error_of(server.post(t.camp_path(c["id"], "preview"), headers=t.h), 400, "bad_request")
    error_of(server.post(t.camp_path(c["id"], "preview"), data="{x",
                         headers={**t.h, "Content-Type": "application/json"}),
             400, "malformed_json")
    error_of(t.preview(missing_id(), {"email": "x@example.com"}), 404, "not_found")


def test_preview_missing_bodies_are_null(server):
    t = Tenant(server)
    got = render(t, html="<p>{{name}}</p>", name="N")
    assert (got["html"], got["text"]) == ("<p>N</p>", None)
    got = render(t, text="{{name}}", name="N")
    assert (got["html"], got["text"]) == (None, "N")


def test_preview_email_is_normalised(server):
    got = render(Tenant(server), text="{{email}}", email="Ada@EXAMPLE.com")
    assert got["to"] == got["text"] == "Ada@example.com"


def test_preview_of_a_live_campaign(server):
    t = Tenant(server)
    lst, c = t.ready(2, text_body="T {{email}}")
    t.do(c["id"], "send")
    got = preview(t, c, {"email": "late@example.com"})
    assert got["text"] == "T late@example.com"


def test_render_limit(server_factory):
    srv = server_factory(args=NO_DELIVERY + ["--render-max", "256"])
    t = Tenant(srv)
    c = campaign(t, html="<p>{{attributes.x}}</p>", text="{{attributes.x}}")
    ok = preview(t, c, {"email": "x@example.com", "attributes": {"x": "a" * 200}})
    assert ok["text"] == "a" * 200
    r = t.preview(c["id"], {"email": "x@example.com", "attributes": {"x": "a" * 300}})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] in ("html", "html_body")
