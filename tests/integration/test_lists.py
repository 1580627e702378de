"""Recipient lists: create, list (paginated), get, partial update, delete (refused
while a live campaign uses the list), the counters, tenant isolation and scopes."""

import pytest

from harness import TIME_RE, UUID_RE, error_of, invalid_field, parse_time
from listhelp import (LIST_FIELDS, Tenant, campaign_list_id, insert_campaign, missing_id,
                      recipient_rows_in_db, set_campaign_status)


def test_create_minimal(server):
    t = Tenant(server)
    r = server.post(t.lists_path(), json={"name": "Newsletter"}, headers=t.h)
    assert r.status_code == 201, r.text
    lst = r.json()
    assert set(lst) == LIST_FIELDS
    assert UUID_RE.match(lst["id"])
    assert lst["name"] == "Newsletter"
    assert lst["description"] is None
    assert lst["metadata"] == {}
    assert (lst["recipient_count"], lst["active_count"]) == (0, 0)
    assert TIME_RE.match(lst["created_at"]) and lst["created_at"] == lst["updated_at"]
    assert t.get_list(lst["id"]) == lst


def test_create_with_all_fields(server):
    t = Tenant(server)
    meta = {"owner": "marketing", "n": 3, "nested": {"a": [1, 2]}, "ok": True}
    lst = t.make_list("Ünïcode list ✓", description="Weekly news\nsecond line", metadata=meta)
    assert lst["name"] == "Ünïcode list ✓"
    assert lst["description"] == "Weekly news\nsecond line"
    assert lst["metadata"] == meta
    assert t.get_list(lst["id"]) == lst


def test_create_with_null_description_and_metadata(server):
    t = Tenant(server)
    lst = t.make_list(description=None, metadata=None)
    assert lst["description"] is None and lst["metadata"] == {}


@pytest.mark.parametrize("body,field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": None}, "name"),
    ({"name": 5}, "name"),
    ({"name": ["a"]}, "name"),
    ({"name": "n" * 256}, "name"),
    ({"name": "two\nlines"}, "name"),
    ({"name": "ok", "description": 5}, "description"),
    ({"name": "ok", "description": "d" * 10001}, "description"),
    ({"name": "ok", "metadata": [1, 2]}, "metadata"),
    ({"name": "ok", "metadata": "text"}, "metadata"),
    ({"name": "ok", "metadata": 7}, "metadata"),
])
def test_create_validation(server, body, field):
    t = Tenant(server)
    invalid_field(server.post(t.lists_path(), json=body, headers=t.h), field)
    assert server.get(t.lists_path(), headers=t.h).json()["total"] == 0


def test_create_body_must_be_json(server):
    t = Tenant(server)
    error_of(server.post(t.lists_path(), data="{nope", headers={**t.h, "Content-Type":
                                                               "application/json"}),
             400, "malformed_json")
    error_of(server.post(t.lists_path(), headers=t.h), 400, "bad_request")
    assert server.get(t.lists_path(), headers=t.h).json()["total"] == 0


def test_get_unknown_list(server):
    t = Tenant(server)
    error_of(server.get(t.lists_path(missing_id()), headers=t.h), 404, "not_found")
    error_of(server.get(t.lists_path("not-a-uuid"), headers=t.h), 404, "not_found")


def test_list_envelope_and_pagination(server):
    t = Tenant(server)
    other = Tenant(server)
    other.make_list("not mine")
    made = [t.make_list(f"L{i}") for i in range(7)]
    r = server.get(t.lists_path(), headers=t.h)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"data", "total", "limit", "offset"}
    assert (body["total"], body["limit"], body["offset"]) == (7, 50, 0)
    # Newest first.
    assert [x["id"] for x in body["data"]] == [x["id"] for x in reversed(made)]
    for row in body["data"]:
        assert set(row) == LIST_FIELDS

    seen = []
    for offset in (0, 3, 6):
        page = server.get(t.lists_path(), params={"limit": 3, "offset": offset},
                          headers=t.h).json()
        assert (page["total"], page["limit"], page["offset"]) == (7, 3, offset)
        assert len(page["data"]) == min(3, 7 - offset)
        seen += [x["id"] for x in page["data"]]
    assert sorted(seen) == sorted(x["id"] for x in made)  # disjoint pages, nothing missing

    beyond = server.get(t.lists_path(), params={"offset": 100}, headers=t.h).json()
    assert beyond["data"] == [] and beyond["total"] == 7
    full = server.get(t.lists_path(), params={"limit": 1000}, headers=t.h).json()
    assert full["limit"] == 1000 and len(full["data"]) == 7


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("limit=-1", "limit"),
    ("limit=ten", "limit"),
    ("limit=1.5", "limit"),
    ("offset=-1", "offset"),
    ("offset=x", "offset"),
])
def test_list_pagination_validation(server, query, field):
    t = Tenant(server)
    invalid_field(server.get(t.lists_path() + "?" + query, headers=t.h), field)


def test_update_is_partial(server):
    t = Tenant(server)
    lst = t.make_list("Before", description="desc", metadata={"a": 1})

    r = server.put(t.lists_path(lst["id"]), json={"name": "After"}, headers=t.h)
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) == LIST_FIELDS
    assert (got["name"], got["description"], got["metadata"]) == ("After", "desc", {"a": 1})
    assert got["created_at"] == lst["created_at"]
    assert parse_time(got["updated_at"]) > parse_time(lst["updated_at"])
    assert t.get_list(lst["id"]) == got

    got = server.put(t.lists_path(lst["id"]), json={"description": "new"}, headers=t.h).json()
    assert (got["name"], got["description"], got["metadata"]) == ("After", "new", {"a": 1})

    got = server.put(t.lists_path(lst["id"]), json={"metadata": {"b": 2}}, headers=t.h).json()
    assert (got["name"], got["description"], got["metadata"]) == ("After", "new", {"b": 2})

    # An empty body changes nothing.
    got = server.put(t.lists_path(lst["id"]), json={}, headers=t.h).json()
    assert (got["name"], got["description"], got["metadata"]) == ("After", "new", {"b": 2})


def test_update_null_clears_description(server):
    t = Tenant(server)
    lst = t.make_list("Keep", description="to be cleared", metadata={"k": "v"})
    r = server.put(t.lists_path(lst["id"]), json={"description": None}, headers=t.h)
    assert r.status_code == 200, r.text
    assert r.json()["description"] is None
    assert r.json()["name"] == "Keep" and r.json()["metadata"] == {"k": "v"}
    assert t.get_list(lst["id"])["description"] is None


@pytest.mark.parametrize("body,field", [
    ({"name": ""}, "name"),
    ({"name": None}, "name"),
    ({"name": 3}, "name"),
    ({"name": "n" * 256}, "name"),
    ({"name": "two\nlines"}, "name"),
    ({"description": False}, "description"),
    ({"metadata": [1]}, "metadata"),
])
def test_update_validation(server, body, field):
    t = Tenant(server)
    lst = t.make_list("Unchanged", description="d")
    invalid_field(server.put(t.lists_path(lst["id"]), json=body, headers=t.h), field)
    assert t.get_list(lst["id"]) == lst


def test_update_unknown_list(server):
    t = Tenant(server)
    error_of(server.put(t.lists_path(missing_id()), json={"name": "x"}, headers=t.h),
             404, "not_found")


def test_delete(server):
    t = Tenant(server)
    lst = t.make_list()
    keep = t.make_list()
    rcpt = t.add(lst["id"], "gone@example.com")
    t.add(keep["id"], "gone@example.com")
    r = server.delete(t.lists_path(lst["id"]), headers=t.h)
    assert r.status_code == 204 and r.content == b""
    error_of(server.get(t.lists_path(lst["id"]), headers=t.h), 404, "not_found")
    error_of(server.get(t.rcpt_path(lst["id"], rcpt["id"]), headers=t.h), 404, "not_found")
    error_of(server.delete(t.lists_path(lst["id"]), headers=t.h), 404, "not_found")
    assert recipient_rows_in_db(server, lst["id"]) == 0
    # The other list and its recipient are untouched.
    assert t.counts(keep["id"]) == (1, 1)
    assert [x["id"] for x in server.get(t.lists_path(), headers=t.h).json()["data"]] == [
        keep["id"]]


@pytest.mark.parametrize("status", ["scheduled", "sending", "paused"])
def test_delete_refused_while_a_live_campaign_uses_the_list(server, status):
    t = Tenant(server)
    lst = t.make_list()
    t.add(lst["id"], "stays@example.com")
    cid = insert_campaign(server, t.id, lst["id"], status)
    err = error_of(server.delete(t.lists_path(lst["id"]), headers=t.h), 409, "conflict")
    assert "campaign" in err["message"]
    assert t.counts(lst["id"]) == (1, 1)
    assert recipient_rows_in_db(server, lst["id"]) == 1
    # Once the campaign is over, the list can go; the campaign keeps no dangling reference.
    set_campaign_status(server, cid, "completed")
    assert server.delete(t.lists_path(lst["id"]), headers=t.h).status_code == 204
    assert campaign_list_id(server, cid) is None
    error_of(server.get(t.lists_path(lst["id"]), headers=t.h), 404, "not_found")


@pytest.mark.parametrize("status", ["draft", "completed", "cancelled", "failed"])
def test_delete_allowed_when_the_campaign_is_not_live(server, status):
    t = Tenant(server)
    lst = t.make_list()
    cid = insert_campaign(server, t.id, lst["id"], status)
    assert server.delete(t.lists_path(lst["id"]), headers=t.h).status_code == 204
    assert campaign_list_id(server, cid) is None


def test_live_campaign_on_another_list_does_not_block(server):
    t = Tenant(server)
    used, free = t.make_list(), t.make_list()
    insert_campaign(server, t.id, used["id"], "paused")
    assert server.delete(t.lists_path(free["id"]), headers=t.h).status_code == 204
    error_of(server.delete(t.lists_path(used["id"]), headers=t.h), 409, "conflict")


def test_counts_follow_every_operation(server):
    t = Tenant(server)
    lst = t.make_list()
    lid = lst["id"]
    assert (lst["recipient_count"], lst["active_count"]) == (0, 0)

    a = t.add(lid, "a@example.com")
    b = t.add(lid, "b@example.com")
    c = t.add(lid, "c@example.com")
    assert t.counts(lid) == (3, 3)

    assert t.put_recipient(lid, a["id"], status="unsubscribed").status_code == 200
    assert t.counts(lid) == (3, 2)
    assert t.put_recipient(lid, b["id"], status="bounced").status_code == 200
    assert t.counts(lid) == (3, 1)
    assert t.put_recipient(lid, b["id"], status="complained").status_code == 200
    assert t.counts(lid) == (3, 1)
    assert t.put_recipient(lid, b["id"], status="active").status_code == 200
    assert t.counts(lid) == (3, 2)
    # A change that is not a status change leaves the counts alone.
    assert t.put_recipient(lid, c["id"], name="C").status_code == 200
    assert t.counts(lid) == (3, 2)

    assert server.delete(t.rcpt_path(lid, a["id"]), headers=t.h).status_code == 204
    assert t.counts(lid) == (2, 2)  # a was not active
    assert server.delete(t.rcpt_path(lid, c["id"]), headers=t.h).status_code == 204
    assert t.counts(lid) == (1, 1)

    r = t.import_csv(lid, "email\nd@example.com\ne@example.com\nb@example.com\nbad\n")
    assert r.status_code == 201, r.text
    assert t.counts(lid) == (3, 3)

    assert t.suppress("D@Example.com").status_code == 201
    assert t.counts(lid) == (3, 2)
    # A suppressed address added to the list is recorded, but not active.
    t.add(lid, "f@example.com")
    assert t.suppress("g@example.com").status_code == 201
    t.add(lid, "g@example.com")
    assert t.counts(lid) == (5, 3)
    # Lifting a suppression changes no recipient.
    assert server.delete(f"{t.unsub_path}/d@example.com", headers=t.h).status_code == 204
    assert t.counts(lid) == (5, 3)

    # The list's own listing agrees with GET.
    rows = server.get(t.lists_path(), headers=t.h).json()["data"]
    assert [(x["recipient_count"], x["active_count"]) for x in rows] == [(5, 3)]
    # And the counters agree with the recipients themselves.
    everyone = t.recipients(lid)
    assert len(everyone) == 5
    assert sum(x["status"] == "active" for x in everyone) == 3


# ---- isolation and scopes ----


def test_tenant_key_never_reaches_another_tenants_lists(server):
    a, b = Tenant(server), Tenant(server)
    theirs = b.make_list("B's list", description="secret")
    b.add(theirs["id"], "b-only@example.com")

    # Through B's path: A's key is not B's key.
    for method, kw in [("GET", {}), ("PUT", {"json": {"name": "pwned"}}), ("DELETE", {})]:
        error_of(server.request(method, b.lists_path(theirs["id"]), headers=a.h, **kw),
                 404, "not_found")
    error_of(server.get(b.lists_path(), headers=a.h), 404, "not_found")
    error_of(server.post(b.lists_path(), json={"name": "planted"}, headers=a.h),
             404, "not_found")

    # Through A's own tenant path with B's list id.
    for method, kw in [("GET", {}), ("PUT", {"json": {"name": "pwned"}}), ("DELETE", {})]:
        error_of(server.request(method, a.lists_path(theirs["id"]), headers=a.h, **kw),
                 404, "not_found")
    assert server.get(a.lists_path(), headers=a.h).json()["total"] == 0

    # Nothing changed for B.
    got = b.get_list(theirs["id"])
    assert (got["name"], got["description"], got["recipient_count"]) == ("B's list", "secret", 1)
    assert server.get(b.lists_path(), headers=b.h).json()["total"] == 1


def test_read_only_key_reads_but_cannot_write(server):
    t = Tenant(server)
    lst = t.make_list("Original")
    error_of(server.post(t.lists_path(), json={"name": "x"}, headers=t.ro),
             403, "insufficient_scope")
    error_of(server.put(t.lists_path(lst["id"]), json={"name": "x"}, headers=t.ro),
             403, "insufficient_scope")
    error_of(server.delete(t.lists_path(lst["id"]), headers=t.ro), 403, "insufficient_scope")
    r = server.get(t.lists_path(), headers=t.ro)
    assert r.status_code == 200 and r.json()["total"] == 1
    r = server.get(t.lists_path(lst["id"]), headers=t.ro)
    assert r.status_code == 200 and r.json()["name"] == "Original"


def test_operator_manages_any_tenants_lists(server):
    t = Tenant(server)
    r = server.post(t.lists_path(), json={"name": "by operator"}, headers=server.op)
    assert r.status_code == 201, r.text
    assert t.get_list(r.json()["id"])["name"] == "by operator"
    error_of(server.post(f"/api/v1/tenants/{missing_id()}/recipient-lists",
                         json={"name": "x"}, headers=server.op), 404, "not_found")


def test_authentication_required(server):
    t = Tenant(server)
    lst = t.make_list()
    error_of(server.get(t.lists_path()), 401, "unauthorized")
    error_of(server.get(t.lists_path(lst["id"])), 401, "unauthorized")
    error_of(server.post(t.lists_path(), json={"name": "x"}), 401, "unauthorized")
