"""Campaigns: create, list (filtered, paginated), get, partial update (drafts
only), delete, field validation, tenant isolation and key scopes."""

import datetime

import pytest

from campaignhelp import (CAMPAIGN_FIELDS, COUNT_FIELDS, NO_DELIVERY, Tenant, campaign_body,
                          future, iso, message_count, missing_id, utcnow)
from harness import TIME_RE, UUID_RE, error_of, invalid_field, parse_time


# The shared module server (conftest.py), without delivery.
SERVER_ARGS = NO_DELIVERY


def assert_fresh_draft(c):
    assert set(c) == CAMPAIGN_FIELDS, set(c) ^ CAMPAIGN_FIELDS
    assert UUID_RE.match(c["id"])
    assert c["status"] == "draft"
    assert c["total_recipients"] == 0
    for k in COUNT_FIELDS:
        assert c[k] == 0, k
    assert c["progress_percentage"] == 0
    assert c["materialized"] is False
    assert TIME_RE.match(c["created_at"]) and TIME_RE.match(c["updated_at"])
    assert c["started_at"] is None and c["completed_at"] is None


# ---- create ----


def test_create_minimal(server):
    t = Tenant(server)
    body = {"name": "Spring sale", "subject": "Hello", "from_address": "news@example.com",
            "text_body": "Hi"}
    r = t.post_campaign(body)
    assert r.status_code == 201, r.text
    c = r.json()
    assert_fresh_draft(c)
    assert {k: c[k] for k in body} == body
    assert c["description"] is None
    assert c["from_name"] is None and c["reply_to"] is None
    assert c["html_body"] is None
    assert c["recipient_list_id"] is None
    assert c["scheduled_at"] is None
    assert c["rate_limit_per_minute"] is None and c["rate_limit_per_hour"] is None
    assert c["tags"] == [] and c["metadata"] == {}
    assert c["created_at"] == c["updated_at"]
    assert t.get(c["id"]) == c


def test_create_with_every_field(server):
    t = Tenant(server)
    lst = t.make_list()
    when = utcnow() + datetime.timedelta(days=3)
    body = {
        "name": "Ünïcode campaign ✓",
        "description": "Quarterly\nnewsletter",
        "subject": "News for {{first_name}}",
        "from_address": "news@example.com",
        "from_name": "Example News",
        "reply_to": "replies@example.com",
        "html_body": "<h1>Hello {{name}}</h1>",
        "text_body": "Hello {{name}}",
        "recipient_list_id": lst["id"],
        "scheduled_at": iso(when),
        "rate_limit_per_minute": 60,
        "rate_limit_per_hour": 1000,
        "tags": ["spring", "sale", "ünï"],
        "metadata": {"owner": "marketing", "n": 3, "nested": {"a": [1, 2]}, "ok": True},
    }
    r = t.post_campaign(body)
    assert r.status_code == 201, r.text
    c = r.json()
    assert_fresh_draft(c)
    for k, v in body.items():
        if k == "scheduled_at":
            assert parse_time(c[k]) == when
        else:
            assert c[k] == v, k
    assert t.get(c["id"]) == c


def test_scheduled_at_offset_is_normalised_to_utc(server):
    t = Tenant(server)
    c = t.create(scheduled_at="2030-01-01T10:00:00+02:00")
    assert c["scheduled_at"] == "2030-01-01T08:00:00Z"
    c = t.create(scheduled_at="2030-06-30T23:30:00.5-01:30")
    assert parse_time(c["scheduled_at"]) == datetime.datetime(
        2030, 7, 1, 1, 0, 0, 500000, tzinfo=datetime.timezone.utc)


def test_only_one_body_is_needed(server):
    t = Tenant(server)
    c = t.create(html_body="<p>x</p>", text_body="DROP")
    assert (c["html_body"], c["text_body"]) == ("<p>x</p>", None)
    c = t.create(html_body=None, text_body="x")
    assert (c["html_body"], c["text_body"]) == (None, "x")


CREATE_INVALID = [
    ({"name": "DROP"}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": None}, "name"),
    ({"name": 5}, "name"),
    ({"name": "n" * 256}, "name"),
    ({"subject": "DROP"}, "subject"),
    ({"subject": ""}, "subject"),
    ({"subject": " \t"}, "subject"),
    ({"subject": None}, "subject"),
    ({"subject": ["x"]}, "subject"),
    ({"subject": "Hello\r\nBcc: victim@example.com"}, "subject"),
    ({"subject": "Hello\nthere"}, "subject"),
    ({"subject": "Hello\rthere"}, "subject"),
    ({"from_address": "DROP"}, "from_address"),
    ({"from_address": ""}, "from_address"),
    ({"from_address": None}, "from_address"),
    ({"from_address": "not an address"}, "from_address"),
    ({"from_address": "news@"}, "from_address"),
    ({"from_address": "@example.com"}, "from_address"),
    ({"from_address": "news@example.com\r\nBcc: x@example.com"}, "from_address"),
    ({"from_address": 7}, "from_address"),
    ({"reply_to": "nope"}, "reply_to"),
    ({"reply_to": "a@b@example.com"}, "reply_to"),
    ({"reply_to": 3}, "reply_to"),
    ({"from_name": "Evil\r\nBcc: x@example.com"}, "from_name"),
    ({"from_name": "Two\nlines"}, "from_name"),
    ({"from_name": 5}, "from_name"),
    ({"description": 5}, "description"),
    ({"html_body": "DROP", "text_body": "DROP"}, "html_body"),
    ({"html_body": None, "text_body": None}, "html_body"),
    ({"html_body": "", "text_body": ""}, "html_body"),
    ({"html_body": 5}, "html_body"),
    ({"text_body": ["x"]}, "text_body"),
    ({"recipient_list_id": "not-a-uuid"}, "recipient_list_id"),
    ({"recipient_list_id": 5}, "recipient_list_id"),
    ({"recipient_list_id": "00000000-0000-4000-8000-000000000000"}, "recipient_list_id"),
    ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
    ({"rate_limit_per_minute": -5}, "rate_limit_per_minute"),
    ({"rate_limit_per_minute": 1.5}, "rate_limit_per_minute"),
    ({"rate_limit_per_minute": "10"}, "rate_limit_per_minute"),
    ({"rate_limit_per_minute": True}, "rate_limit_per_minute"),
    ({"rate_limit_per_minute": 9223372036854775807}, "rate_limit_per_minute"),
    ({"rate_limit_per_hour": 0}, "rate_limit_per_hour"),
    ({"rate_limit_per_hour": -1}, "rate_limit_per_hour"),
    ({"rate_limit_per_hour": 2.0}, "rate_limit_per_hour"),
    ({"rate_limit_per_hour": "60"}, "rate_limit_per_hour"),
    ({"scheduled_at": "tomorrow"}, "scheduled_at"),
    ({"scheduled_at": "2030-01-01"}, "scheduled_at"),
    ({"scheduled_at": "2030-01-01 10:00:00"}, "scheduled_at"),
    ({"scheduled_at": "2030-02-30T10:00:00Z"}, "scheduled_at"),
    ({"scheduled_at": "2030-01-01T25:00:00Z"}, "scheduled_at"),
    ({"scheduled_at": "2030-01-01T10:00:00"}, "scheduled_at"),
    ({"scheduled_at": 1893456000}, "scheduled_at"),
    ({"scheduled_at": "2020-01-01T00:00:00Z"}, "scheduled_at"),
    ({"tags": "spring"}, "tags"),
    ({"tags": {"a": 1}}, "tags"),
    ({"tags": [1, 2]}, "tags"),
    ({"tags": ["ok", None]}, "tags"),
    ({"tags": ["ok", ["nested"]]}, "tags"),
    ({"tags": [""]}, "tags"),
    ({"metadata": [1, 2]}, "metadata"),
    ({"metadata": "text"}, "metadata"),
    ({"metadata": 7}, "metadata"),
    ({"description": "d" * 10001}, "description"),
    ({"subject": "s" * 999}, "subject"),
    ({"from_name": "f" * 256}, "from_name"),
    ({"tags": ["t" * 101]}, "tags"),
]


@pytest.mark.parametrize("overrides,field", CREATE_INVALID, ids=lambda x: repr(x)[:60])
def test_create_validation(server, overrides, field):
    t = Tenant(server)
    invalid_field(t.post_campaign(campaign_body(**overrides)), field)
    assert t.listing()["total"] == 0


def test_scheduled_at_a_moment_ago_is_in_the_past(server):
    t = Tenant(server)
    past = iso(utcnow() - datetime.timedelta(seconds=5))
    err = invalid_field(t.post_campaign(campaign_body(scheduled_at=past)), "scheduled_at")
    assert "past" in err["message"]


def test_rate_limit_bounds(server):
    t = Tenant(server)
    c = t.create(rate_limit_per_minute=1, rate_limit_per_hour=1)
    assert (c["rate_limit_per_minute"], c["rate_limit_per_hour"]) == (1, 1)
    c = t.create(rate_limit_per_minute=1000000, rate_limit_per_hour=1000000000)
    assert (c["rate_limit_per_minute"], c["rate_limit_per_hour"]) == (1000000, 1000000000)
    assert t.get(c["id"]) == c
    # Larger values are either kept exactly or refused, never truncated.
    for value in (2147483647, 2147483648, 10 ** 12):
        r = t.post_campaign(campaign_body(rate_limit_per_minute=value))
        if r.status_code == 201:
            assert t.get(r.json()["id"])["rate_limit_per_minute"] == value
        else:
            invalid_field(r, "rate_limit_per_minute")


def test_length_limits_inclusive(server):
    t = Tenant(server)
    c = t.create(name="n" * 255, subject="s" * 998, description="d" * 10000,
                 from_name="f" * 255, tags=["t" * 100])
    assert (len(c["name"]), len(c["subject"]), len(c["description"]), len(c["from_name"]),
            c["tags"]) == (255, 998, 10000, 255, ["t" * 100])


def test_null_optionals_on_create(server):
    t = Tenant(server)
    c = t.create(description=None, from_name=None, reply_to=None, recipient_list_id=None,
                 scheduled_at=None, rate_limit_per_minute=None, rate_limit_per_hour=None,
                 tags=None, metadata=None)
    for k in ("description", "from_name", "reply_to", "recipient_list_id", "scheduled_at",
              "rate_limit_per_minute", "rate_limit_per_hour"):
        assert c[k] is None, k
    assert c["tags"] == [] and c["metadata"] == {}


def test_many_tags(server):
    t = Tenant(server)
    tags = [f"t{i}" for i in range(50)]
    assert t.create(tags=tags)["tags"] == tags
    invalid_field(t.post_campaign(campaign_body(tags=tags + ["one-too-many"])), "tags")


def test_another_tenants_list_is_refused(server):
    """The original let a campaign send to another tenant's list."""
    a, b = Tenant(server), Tenant(server)
    theirs = b.make_list(2)
    err = invalid_field(a.post_campaign(campaign_body(recipient_list_id=theirs["id"])),
                        "recipient_list_id")
    assert a.listing()["total"] == 0
    # Nor can a draft be pointed at it afterwards.
    mine = a.make_list(1)
    c = a.create(recipient_list_id=mine["id"])
    invalid_field(a.put(c["id"], {"recipient_list_id": theirs["id"]}), "recipient_list_id")
    assert a.get(c["id"]) == c
    assert err["message"]


def test_list_id_is_case_insensitive(server):
    t = Tenant(server)
    lst = t.make_list()
    c = t.create(recipient_list_id=lst["id"].upper())
    assert c["recipient_list_id"] == lst["id"]


def test_body_must_be_a_json_object(server):
    t = Tenant(server)
    error_of(server.post(t.camp_path(), data="{nope",
                         headers={**t.h, "Content-Type": "application/json"}),
             400, "malformed_json")
    error_of(server.post(t.camp_path(), headers=t.h), 400, "bad_request")
    error_of(server.post(t.camp_path(), json=[campaign_body()], headers=t.h),
             400, "malformed_json")
    assert t.listing()["total"] == 0


# ---- get / list ----


def test_get_unknown(server):
    t = Tenant(server)
    error_of(server.get(t.camp_path(missing_id()), headers=t.h), 404, "not_found")
    error_of(server.get(t.camp_path("not-a-uuid"), headers=t.h), 404, "not_found")


def test_list_envelope_order_and_pagination(server):
    t = Tenant(server)
    other = Tenant(server)
    other.create()
    made = [t.create(name=f"C{i}") for i in range(7)]
    body = t.listing()
    assert set(body) == {"data", "total", "limit", "offset"}
    assert (body["total"], body["limit"], body["offset"]) == (7, 50, 0)
    assert [c["id"] for c in body["data"]] == [c["id"] for c in reversed(made)]
    for c in body["data"]:
        assert set(c) == CAMPAIGN_FIELDS
    assert body["data"][0] == t.get(made[-1]["id"])

    page = t.listing(limit=3, offset=2)
    assert (page["total"], page["limit"], page["offset"]) == (7, 3, 2)
    assert [c["name"] for c in page["data"]] == ["C4", "C3", "C2"]
    last = t.listing(limit=3, offset=6)
    assert [c["name"] for c in last["data"]] == ["C0"]
    beyond = t.listing(limit=3, offset=50)
    assert beyond["data"] == [] and beyond["total"] == 7

    walked, offset = [], 0
    while True:
        p = t.listing(limit=2, offset=offset)
        if not p["data"]:
            break
        walked += [c["id"] for c in p["data"]]
        offset += 2
    assert walked == [c["id"] for c in reversed(made)]


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "limit"), ({"limit": -1}, "limit"), ({"limit": "x"}, "limit"),
    ({"limit": 1001}, "limit"), ({"offset": -1}, "offset"), ({"offset": "x"}, "offset"),
    ({"status": "bogus"}, "status"), ({"status": ""}, "status"), ({"status": "Draft"}, "status"),
])
def test_list_bad_query(server, params, field):
    t = Tenant(server)
    invalid_field(server.get(t.camp_path(), params=params, headers=t.h), field)


def test_list_filter_by_status(server):
    t = Tenant(server)
    drafts = [t.create() for _ in range(2)]
    _, s = t.ready(2)
    t.do(s["id"], "schedule", {"scheduled_at": future(3600)})
    _, p = t.ready(2)
    t.do(p["id"], "send")
    _, q = t.ready(2)
    t.do(q["id"], "send")
    t.do(q["id"], "pause")
    _, x = t.ready(2)
    t.do(x["id"], "send")
    t.do(x["id"], "cancel")

    def ids(status):
        body = t.listing(status=status)
        assert all(c["status"] == status for c in body["data"]), body
        assert body["total"] == len(body["data"])
        return {c["id"] for c in body["data"]}

    assert ids("draft") == {c["id"] for c in drafts}
    assert ids("scheduled") == {s["id"]}
    assert ids("sending") == {p["id"]}
    assert ids("paused") == {q["id"]}
    assert ids("cancelled") == {x["id"]}
    assert ids("completed") == set()
    assert ids("failed") == set()
    assert t.listing()["total"] == 6
    page = t.listing(status="draft", limit=1, offset=1)
    assert page["total"] == 2 and len(page["data"]) == 1


# ---- update ----


def test_put_is_a_partial_update(server):
    t = Tenant(server)
    lst = t.make_list()
    c = t.create(description="d", from_name="F", reply_to="r@example.com",
                 recipient_list_id=lst["id"], rate_limit_per_minute=10, tags=["a"],
                 metadata={"k": 1})
    r = t.put(c["id"], {"name": "Renamed"})
    assert r.status_code == 200, r.text
    u = r.json()
    assert set(u) == CAMPAIGN_FIELDS
    assert u["name"] == "Renamed"
    for k in CAMPAIGN_FIELDS - {"name", "updated_at"}:
        assert u[k] == c[k], k
    assert parse_time(u["updated_at"]) >= parse_time(c["updated_at"])
    assert t.get(c["id"]) == u

    r = t.put(c["id"], {"subject": "New {{email}}", "text_body": "New text", "tags": ["b", "c"],
                        "metadata": {"x": {"y": 2}}, "rate_limit_per_hour": 99})
    assert r.status_code == 200, r.text
    u2 = r.json()
    assert (u2["subject"], u2["text_body"], u2["tags"], u2["metadata"],
            u2["rate_limit_per_hour"]) == ("New {{email}}", "New text", ["b", "c"],
                                           {"x": {"y": 2}}, 99)
    assert (u2["name"], u2["html_body"], u2["rate_limit_per_minute"], u2["description"]) == (
        "Renamed", c["html_body"], 10, "d")
    assert t.get(c["id"]) == u2


def test_put_every_field(server):
    t = Tenant(server)
    c = t.create()
    lst = t.make_list()
    when = future(7200)
    body = {"name": "N2", "description": "D2", "subject": "S2", "from_address": "a2@example.org",
            "from_name": "F2", "reply_to": "r2@example.org", "html_body": "<b>2</b>",
            "text_body": "2", "recipient_list_id": lst["id"], "scheduled_at": when,
            "rate_limit_per_minute": 7, "rate_limit_per_hour": 70, "tags": ["z"],
            "metadata": {"v": 2}}
    r = t.put(c["id"], body)
    assert r.status_code == 200, r.text
    u = r.json()
    for k, v in body.items():
        if k == "scheduled_at":
            assert parse_time(u[k]) == parse_time(v)
        else:
            assert u[k] == v, k
    assert u["status"] == "draft" and u["created_at"] == c["created_at"]


def test_put_null_clears_nullable_fields(server):
    t = Tenant(server)
    lst = t.make_list()
    c = t.create(description="d", from_name="F", reply_to="r@example.com",
                 recipient_list_id=lst["id"], scheduled_at=future(), rate_limit_per_minute=10,
                 rate_limit_per_hour=100, tags=["a"], metadata={"k": 1})
    r = t.put(c["id"], {"description": None, "from_name": None, "reply_to": None,
                        "recipient_list_id": None, "scheduled_at": None,
                        "rate_limit_per_minute": None, "rate_limit_per_hour": None,
                        "tags": None, "metadata": None, "text_body": None})
    assert r.status_code == 200, r.text
    u = r.json()
    for k in ("description", "from_name", "reply_to", "recipient_list_id", "scheduled_at",
              "rate_limit_per_minute", "rate_limit_per_hour", "text_body"):
        assert u[k] is None, k
    assert u["tags"] == [] and u["metadata"] == {}
    assert u["html_body"] == c["html_body"]
    assert t.get(c["id"]) == u


def test_put_cannot_drop_the_last_body(server):
    t = Tenant(server)
    c = t.create(text_body="DROP")
    invalid_field(t.put(c["id"], {"html_body": None}), "html_body")
    invalid_field(t.put(c["id"], {"html_body": ""}), "html_body")
    # Swapping one body for the other in one request is fine.
    r = t.put(c["id"], {"html_body": None, "text_body": "plain"})
    assert r.status_code == 200, r.text
    assert (r.json()["html_body"], r.json()["text_body"]) == (None, "plain")


@pytest.mark.parametrize("value", [None, ""], ids=["null", "empty"])
def test_put_cannot_clear_from_address(server, value):
    """from_address is required: clearing it is a 422 naming the field (not a
    database error)."""
    t = Tenant(server)
    c = t.create()
    invalid_field(t.put(c["id"], {"from_address": value}), "from_address")
    assert t.get(c["id"]) == c


PUT_INVALID = [
    ({"name": ""}, "name"), ({"name": None}, "name"), ({"name": " "}, "name"),
    ({"subject": ""}, "subject"), ({"subject": None}, "subject"),
    ({"subject": "a\r\nb"}, "subject"),
    ({"from_address": "nope"}, "from_address"),
    ({"reply_to": "nope@"}, "reply_to"),
    ({"from_name": "a\nb"}, "from_name"),
    ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
    ({"rate_limit_per_hour": -3}, "rate_limit_per_hour"),
    ({"scheduled_at": "2001-01-01T00:00:00Z"}, "scheduled_at"),
    ({"scheduled_at": "soon"}, "scheduled_at"),
    ({"tags": [1]}, "tags"),
    ({"metadata": []}, "metadata"),
    ({"recipient_list_id": "00000000-0000-4000-8000-000000000000"}, "recipient_list_id"),
    ({"recipient_list_id": "xyz"}, "recipient_list_id"),
]


@pytest.mark.parametrize("body,field", PUT_INVALID, ids=lambda x: repr(x)[:50])
def test_put_validation_changes_nothing(server, body, field):
    t = Tenant(server)
    c = t.create(rate_limit_per_minute=5)
    invalid_field(t.put(c["id"], {"name": "would change", **body}), field)
    assert t.get(c["id"]) == c


def test_put_unknown_campaign(server):
    t = Tenant(server)
    error_of(t.put(missing_id(), {"name": "x"}), 404, "not_found")


@pytest.mark.parametrize("status", ["scheduled", "sending", "paused", "cancelled", "completed"])
def test_put_only_on_drafts(server, status):
    t = Tenant(server)
    c = t.campaign_in(status)
    for body in ({"name": "changed"}, {"name": ""}, {}):
        err = error_of(t.put(c["id"], body), 409, "invalid_state")
        assert err["status"] == status
    after = t.get(c["id"])
    assert after["name"] == c["name"] and after["status"] == status


# ---- delete ----


def test_delete_draft(server):
    t = Tenant(server)
    c = t.create()
    keep = t.create()
    r = t.delete(c["id"])
    assert r.status_code == 204, r.text
    assert r.content == b""
    error_of(server.get(t.camp_path(c["id"]), headers=t.h), 404, "not_found")
    error_of(t.delete(c["id"]), 404, "not_found")
    assert [x["id"] for x in t.listing()["data"]] == [keep["id"]]


@pytest.mark.parametrize("status", ["completed", "cancelled", "failed"])
def test_delete_finished_campaign_removes_its_messages(server, status):
    t = Tenant(server)
    c = t.campaign_in(status)
    assert message_count(server, c["id"]) == 3
    r = t.delete(c["id"])
    assert r.status_code == 204, r.text
    error_of(server.get(t.camp_path(c["id"]), headers=t.h), 404, "not_found")
    assert message_count(server, c["id"]) == 0


@pytest.mark.parametrize("status", ["scheduled", "sending", "paused"])
def test_delete_live_campaign_is_409(server, status):
    t = Tenant(server)
    c = t.campaign_in(status)
    err = error_of(t.delete(c["id"]), 409, "invalid_state")
    assert err["status"] == status
    assert t.get(c["id"])["status"] == status


def test_delete_unknown(server):
    t = Tenant(server)
    error_of(t.delete(missing_id()), 404, "not_found")
    error_of(t.delete("not-a-uuid"), 404, "not_found")


# ---- isolation and scopes ----


def campaign_requests(t, cid):
    """Every campaign endpoint, as (method, path, body)."""
    p = t.camp_path(cid)
    return [
        ("GET", p, None),
        ("PUT", p, {"name": "Hijacked"}),
        ("DELETE", p, None),
        ("POST", p + "/schedule", {"scheduled_at": future()}),
        ("POST", p + "/send", None),
        ("POST", p + "/pause", None),
        ("POST", p + "/resume", None),
        ("POST", p + "/cancel", None),
        ("GET", p + "/stats", None),
        ("POST", p + "/preview", {"email": "x@example.com"}),
    ]


def test_other_tenant_sees_nothing(server):
    a, b = Tenant(server), Tenant(server)
    _, draft = a.ready(2)
    _, live = a.ready(2)
    a.do(live["id"], "send")
    b.create()
    for c in (draft, live):
        before = a.get(c["id"])
        # B's key on A's paths: A does not exist for it.
        for method, path, body in campaign_requests(a, c["id"]):
            kw = {"json": body} if body is not None else {}
            error_of(server.request(method, path, headers=b.h, **kw), 404, "not_found")
        # B's key on B's paths with A's campaign id: no such campaign.
        for method, path, body in campaign_requests(b, c["id"]):
            kw = {"json": body} if body is not None else {}
            error_of(server.request(method, path, headers=b.h, **kw), 404, "not_found")
        after = a.get(c["id"])
        assert after["status"] == before["status"] and after["name"] == before["name"]
    error_of(server.get(a.camp_path(), headers=b.h), 404, "not_found")
    error_of(server.post(a.camp_path(), json=campaign_body(), headers=b.h), 404, "not_found")
    assert a.listing()["total"] == 2
    assert b.listing()["total"] == 1


def test_read_only_key(server):
    t = Tenant(server)
    lst, c = t.ready(2)
    _, live = t.ready(2)
    t.do(live["id"], "send")
    t.wait_materialized(live["id"])
    _, paused = t.ready(2)
    t.do(paused["id"], "send")
    t.do(paused["id"], "pause")

    def forbidden(r):
        assert r.status_code == 403, r.text
        error_of(r, 403, "insufficient_scope")

    forbidden(t.post_campaign(campaign_body(), headers=t.ro))
    forbidden(t.put(c["id"], {"name": "x"}, headers=t.ro))
    forbidden(t.delete(c["id"], headers=t.ro))
    forbidden(t.action(c["id"], "schedule", {"scheduled_at": future()}, headers=t.ro))
    forbidden(t.action(c["id"], "send", headers=t.ro))
    forbidden(t.action(live["id"], "pause", headers=t.ro))
    forbidden(t.action(live["id"], "cancel", headers=t.ro))
    forbidden(t.action(paused["id"], "resume", headers=t.ro))
    assert t.get(c["id"]) == c
    assert t.get(live["id"])["status"] == "sending"
    assert t.get(paused["id"])["status"] == "paused"
    assert t.listing()["total"] == 3

    # Reading is fine: list, get, stats and preview.
    r = server.get(t.camp_path(), headers=t.ro)
    assert r.status_code == 200 and r.json()["total"] == 3
    r = server.get(t.camp_path(c["id"]), headers=t.ro)
    assert r.status_code == 200 and r.json() == c
    st = t.stats(live["id"], headers=t.ro)
    assert st["total_recipients"] == 2 and st["pending_count"] == 2
    r = t.preview(c["id"], {"email": "ro@example.com", "name": "Reader"}, headers=t.ro)
    assert r.status_code == 200, r.text
    assert r.json()["html"].startswith("<p>Hi Reader</p>")
    rid = t.add(lst["id"], "member@example.com", name="Member")["id"]
    r = t.preview(c["id"], {"recipient_id": rid}, headers=t.ro)
    assert r.status_code == 200 and r.json()["to"] == "member@example.com", r.text


def test_operator_can_manage_a_tenants_campaigns(server):
    t = Tenant(server)
    r = server.post(t.camp_path(), json=campaign_body(name="By operator"), headers=server.op)
    assert r.status_code == 201, r.text
    c = r.json()
    assert t.get(c["id"]) == c
    r = server.get(t.camp_path(), headers=server.op)
    assert r.status_code == 200 and r.json()["total"] == 1


def test_unauthenticated_is_401(server):
    t = Tenant(server)
    c = t.create()
    error_of(server.get(t.camp_path()), 401, "unauthorized")
    error_of(server.get(t.camp_path(c["id"])), 401, "unauthorized")
    error_of(server.post(t.camp_path(c["id"], "send")), 401, "unauthorized")
