"""Recipients of a list: create (address validation and normalisation), get,
update (status, names, attributes; the address is fixed), delete, search and
pagination, the suppression rules, tenant isolation and scopes."""

import pytest

from harness import TIME_RE, UUID_RE, error_of, invalid_field, parse_time
from listhelp import RECIPIENT_FIELDS, Tenant, domain_of_length, missing_id


def test_create_minimal(server):
    t = Tenant(server)
    lst = t.make_list()
    r = server.post(t.rcpt_path(lst["id"]), json={"email": "Jane.Doe@Example.COM"}, headers=t.h)
    assert r.status_code == 201, r.text
    x = r.json()
    assert set(x) == RECIPIENT_FIELDS
    assert UUID_RE.match(x["id"])
    assert x["recipient_list_id"] == lst["id"]
    # The domain is lowercased, the local part kept as given.
    assert x["email"] == "Jane.Doe@example.com"
    assert (x["name"], x["first_name"], x["last_name"]) == (None, None, None)
    assert x["status"] == "active"
    assert x["attributes"] == {}
    assert x["unsubscribed_at"] is None
    for k in ("subscribed_at", "created_at", "updated_at"):
        assert TIME_RE.match(x[k]), x
    assert t.get_recipient(lst["id"], x["id"]) == x


def test_status_cannot_be_chosen_at_creation(server):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "eager@example.com", status="unsubscribed")
    assert x["status"] == "active" and x["unsubscribed_at"] is None
    assert t.counts(lst["id"]) == (1, 1)


def test_create_with_all_fields(server):
    t = Tenant(server)
    lst = t.make_list()
    attrs = {"plan": "pro", "age": 42, "tags": ["a", "b"], "vip": True, "extra": None}
    x = t.add(lst["id"], "full@example.com", name="Jane Q. Doe", first_name="Jane",
              last_name="Doe", attributes=attrs)
    assert (x["name"], x["first_name"], x["last_name"]) == ("Jane Q. Doe", "Jane", "Doe")
    assert x["attributes"] == attrs
    assert t.get_recipient(lst["id"], x["id"]) == x


@pytest.mark.parametrize("body,field", [
    ({}, "email"),
    ({"email": None}, "email"),
    ({"email": 5}, "email"),
    ({"email": ""}, "email"),
    ({"email": "not-an-address"}, "email"),
    ({"email": "ok@example.com", "name": 5}, "name"),
    ({"email": "ok@example.com", "name": "two\nlines"}, "name"),
    ({"email": "ok@example.com", "first_name": "n" * 256}, "first_name"),
    ({"email": "ok@example.com", "last_name": ["x"]}, "last_name"),
    ({"email": "ok@example.com", "attributes": [1]}, "attributes"),
    ({"email": "ok@example.com", "attributes": "plan=pro"}, "attributes"),
])
def test_create_validation(server, body, field):
    t = Tenant(server)
    lst = t.make_list()
    invalid_field(server.post(t.rcpt_path(lst["id"]), json=body, headers=t.h), field)
    assert t.counts(lst["id"]) == (0, 0)


VALID_ADDRESSES = [
    # (given, stored)
    ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),
    ("é" * 32 + "@example.com", "é" * 32 + "@example.com"),  # 64 octets
    ("a@" + domain_of_length(252), "a@" + domain_of_length(252)),  # 254 in total
    ("a" * 64 + "@" + domain_of_length(189), "a" * 64 + "@" + domain_of_length(189)),
    ("x@" + "b" * 63 + ".com", "x@" + "b" * 63 + ".com"),
    ("user+tag@Example.Org", "user+tag@example.org"),
    ("first.last@sub.domain.example", "first.last@sub.domain.example"),
    ("o'brien@example.ie", "o'brien@example.ie"),
    ("-lead@example.com", "-lead@example.com"),
    ("User@Bücher.DE", "User@xn--bcher-kva.de"),
    ("info@例え.jp", "info@xn--r8jz45g.jp"),
    ("mixed@my-host.example.com", "mixed@my-host.example.com"),
]


@pytest.mark.parametrize("given,stored", VALID_ADDRESSES)
def test_valid_addresses(server, given, stored):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], given)
    assert x["email"] == stored


INVALID_ADDRESSES = [
    "a" * 65 + "@example.com",  # local part of 65 octets
    "é" * 32 + "e@example.com",  # 65 octets
    "a@" + domain_of_length(253),  # 255 in total
    "a" * 64 + "@" + domain_of_length(190),  # 255 in total
    "x@" + "b" * 64 + ".com",  # a label of 64
    "plain",
    "@example.com",
    "user@",
    "two@@example.com",
    "a@b@example.com",
    "sp ace@example.com",
    "space@exa mple.com",
    "tab\t@example.com",
    "ctl\x01@example.com",
    "del\x7f@example.com",
    "nl\n@example.com",
    "a..b@example.com",
    ".lead@example.com",
    "trail.@example.com",
    "user@localhost",
    "user@-example.com",
    "user@example-.com",
    "user@exa_mple.com",
    "user@example..com",
    "user@.example.com",
    "user@example.com.",
    "user@[192.0.2.1]",
    "user@☃.com",  # not a valid IDNA2008 label
]


@pytest.mark.parametrize("given", INVALID_ADDRESSES)
def test_invalid_addresses(server, given):
    t = Tenant(server)
    lst = t.make_list()
    err = invalid_field(server.post(t.rcpt_path(lst["id"]), json={"email": given},
                                    headers=t.h), "email")
    assert "email" in err["message"]
    assert t.counts(lst["id"]) == (0, 0)


def test_duplicate_email_is_409_case_insensitive(server):
    t = Tenant(server)
    lst, other = t.make_list(), t.make_list()
    first = t.add(lst["id"], "Dup@Example.com", name="first")
    for again in ("Dup@Example.com", "dup@example.com", "DUP@EXAMPLE.COM", " dup@example.com"):
        error_of(server.post(t.rcpt_path(lst["id"]), json={"email": again, "name": "second"},
                             headers=t.h), 409, "conflict")
    assert t.counts(lst["id"]) == (1, 1)
    assert t.get_recipient(lst["id"], first["id"])["name"] == "first"
    # Another list of the same tenant may hold the same address.
    assert t.add(other["id"], "dup@example.com")["email"] == "dup@example.com"


def test_duplicate_internationalised_domain(server):
    t = Tenant(server)
    lst = t.make_list()
    t.add(lst["id"], "anna@bücher.de")
    error_of(server.post(t.rcpt_path(lst["id"]), json={"email": "ANNA@xn--bcher-kva.de"},
                         headers=t.h), 409, "conflict")
    error_of(server.post(t.rcpt_path(lst["id"]), json={"email": "anna@BÜCHER.de"},
                         headers=t.h), 409, "conflict")


def test_create_in_unknown_list(server):
    t = Tenant(server)
    error_of(server.post(t.rcpt_path(missing_id()), json={"email": "a@example.com"},
                         headers=t.h), 404, "not_found")


def test_get_unknown_or_in_the_wrong_list(server):
    t = Tenant(server)
    a, b = t.make_list(), t.make_list()
    x = t.add(a["id"], "x@example.com")
    error_of(server.get(t.rcpt_path(a["id"], missing_id()), headers=t.h), 404, "not_found")
    error_of(server.get(t.rcpt_path(a["id"], "nope"), headers=t.h), 404, "not_found")
    # The recipient belongs to list a, not b.
    error_of(server.get(t.rcpt_path(b["id"], x["id"]), headers=t.h), 404, "not_found")
    error_of(server.put(t.rcpt_path(b["id"], x["id"]), json={"name": "n"}, headers=t.h),
             404, "not_found")
    error_of(server.delete(t.rcpt_path(b["id"], x["id"]), headers=t.h), 404, "not_found")
    assert t.get_recipient(a["id"], x["id"])["name"] is None


def test_update_fields(server):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "upd@example.com", name="Old", first_name="O", last_name="L",
              attributes={"a": "1", "b": "2"})
    r = t.put_recipient(lst["id"], x["id"], name="New", attributes={"c": 3})
    assert r.status_code == 200, r.text
    y = r.json()
    assert set(y) == RECIPIENT_FIELDS
    assert (y["name"], y["first_name"], y["last_name"]) == ("New", "O", "L")
    assert y["attributes"] == {"c": 3}
    assert y["email"] == x["email"] and y["status"] == "active"
    assert y["created_at"] == x["created_at"] and y["subscribed_at"] == x["subscribed_at"]
    assert parse_time(y["updated_at"]) > parse_time(x["updated_at"])
    assert t.get_recipient(lst["id"], x["id"]) == y

    # null clears a name; attributes null empties them.
    y = t.put_recipient(lst["id"], x["id"], first_name=None, last_name=None,
                        attributes=None).json()
    assert (y["name"], y["first_name"], y["last_name"]) == ("New", None, None)
    assert y["attributes"] == {}


def test_update_status_unsubscribed_stamps_unsubscribed_at(server):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "leaving@example.com")
    r = t.put_recipient(lst["id"], x["id"], status="unsubscribed")
    assert r.status_code == 200, r.text
    y = r.json()
    assert y["status"] == "unsubscribed"
    assert TIME_RE.match(y["unsubscribed_at"] or ""), y
    assert parse_time(y["unsubscribed_at"]) >= parse_time(x["created_at"])
    assert t.get_recipient(lst["id"], x["id"])["unsubscribed_at"] == y["unsubscribed_at"]
    assert t.counts(lst["id"]) == (1, 0)
    # Setting it again is no change: the first stamp stays.
    again = t.put_recipient(lst["id"], x["id"], status="unsubscribed").json()
    assert again["unsubscribed_at"] == y["unsubscribed_at"]
    assert t.counts(lst["id"]) == (1, 0)


@pytest.mark.parametrize("status", ["bounced", "complained"])
def test_update_other_statuses(server, status):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "s@example.com")
    y = t.put_recipient(lst["id"], x["id"], status=status).json()
    assert y["status"] == status
    assert t.counts(lst["id"]) == (1, 0)
    y = t.put_recipient(lst["id"], x["id"], status="active").json()
    assert y["status"] == "active"
    assert t.counts(lst["id"]) == (1, 1)


@pytest.mark.parametrize("body,field", [
    ({"status": "deleted"}, "status"),
    ({"status": "ACTIVE"}, "status"),
    ({"status": 1}, "status"),
    ({"name": "a\r\nb"}, "name"),
    ({"attributes": [1]}, "attributes"),
    ({"email": "not an address"}, "email"),
])
def test_update_validation(server, body, field):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "v@example.com", name="Kept")
    invalid_field(server.put(t.rcpt_path(lst["id"], x["id"]), json=body, headers=t.h), field)
    assert t.get_recipient(lst["id"], x["id"]) == x


def test_email_cannot_be_changed(server):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "Fixed@example.com")
    err = invalid_field(t.put_recipient(lst["id"], x["id"], email="other@example.com",
                                        name="n"), "email")
    assert "changed" in err["message"]
    assert t.get_recipient(lst["id"], x["id"]) == x
    # Sending the same address (in any case) is not a change.
    r = t.put_recipient(lst["id"], x["id"], email="FIXED@EXAMPLE.COM", name="n")
    assert r.status_code == 200, r.text
    assert r.json()["email"] == "Fixed@example.com" and r.json()["name"] == "n"


def test_update_unknown_recipient(server):
    t = Tenant(server)
    lst = t.make_list()
    error_of(t.put_recipient(lst["id"], missing_id(), name="x"), 404, "not_found")
    error_of(t.put_recipient(missing_id(), missing_id(), name="x"), 404, "not_found")


def test_suppressed_address_cannot_be_made_active(server):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "blocked@example.com")
    assert t.suppress("BLOCKED@example.com").status_code == 201
    y = t.get_recipient(lst["id"], x["id"])
    assert y["status"] == "unsubscribed" and y["unsubscribed_at"] is not None
    error_of(t.put_recipient(lst["id"], x["id"], status="active"), 409, "conflict")
    assert t.get_recipient(lst["id"], x["id"])["status"] == "unsubscribed"
    assert t.counts(lst["id"]) == (1, 0)
    # Other changes are still allowed.
    r = t.put_recipient(lst["id"], x["id"], name="Still here", status="bounced")
    assert r.status_code == 200 and r.json()["status"] == "bounced"
    # Once lifted, the address may be active again.
    assert server.delete(f"{t.unsub_path}/blocked@example.com", headers=t.h).status_code == 204
    r = t.put_recipient(lst["id"], x["id"], status="active")
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert t.counts(lst["id"]) == (1, 1)


def test_suppressed_address_is_added_but_never_active(server):
    t = Tenant(server)
    lst = t.make_list()
    assert t.suppress("quiet@example.com").status_code == 201
    x = t.add(lst["id"], "Quiet@Example.com")
    assert x["status"] == "unsubscribed"
    assert TIME_RE.match(x["unsubscribed_at"] or ""), x
    assert t.counts(lst["id"]) == (1, 0)


def test_delete(server):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "del@example.com")
    t.add(lst["id"], "keep@example.com")
    r = server.delete(t.rcpt_path(lst["id"], x["id"]), headers=t.h)
    assert r.status_code == 204 and r.content == b""
    error_of(server.get(t.rcpt_path(lst["id"], x["id"]), headers=t.h), 404, "not_found")
    error_of(server.delete(t.rcpt_path(lst["id"], x["id"]), headers=t.h), 404, "not_found")
    assert t.counts(lst["id"]) == (1, 1)
    # The address may be added again.
    assert t.add(lst["id"], "del@example.com")["id"] != x["id"]
    assert t.counts(lst["id"]) == (2, 2)


# ---- listing, filters, search ----


@pytest.fixture
def populated(server):
    t = Tenant(server)
    lst = t.make_list()
    lid = lst["id"]
    people = {
        "alice@example.com": dict(name="Alice Smith", first_name="Alice", last_name="Smith"),
        "bob@example.org": dict(name="Bob Jones"),
        "carol@sample.net": dict(first_name="Carol", last_name="Alicea"),
        "dave@example.com": dict(name="Dave"),
        "a%b@example.com": dict(name="Percent"),
        "a_b@example.com": dict(name="Underscore"),
        "Zed.Upper@Example.com": dict(name="ZED"),
    }
    ids = {}
    for email, fields in people.items():
        ids[email] = t.add(lid, email, **fields)["id"]
    t.put_recipient(lid, ids["bob@example.org"], status="unsubscribed")
    t.put_recipient(lid, ids["dave@example.com"], status="bounced")
    # Another list of the same tenant with a matching address: never in this list's results.
    t.add(t.make_list()["id"], "alice@other.example", name="Alice Elsewhere")
    return t, lid


def emails(resp):
    assert resp.status_code == 200, resp.text
    return sorted(x["email"] for x in resp.json()["data"])


def test_list_envelope(server, populated):
    t, lid = populated
    r = server.get(t.rcpt_path(lid), headers=t.h)
    body = r.json()
    assert set(body) == {"data", "total", "limit", "offset"}
    assert (body["total"], body["limit"], body["offset"]) == (7, 50, 0)
    for x in body["data"]:
        assert set(x) == RECIPIENT_FIELDS and x["recipient_list_id"] == lid
    # Newest first.
    assert [x["email"] for x in body["data"]] == [
        "Zed.Upper@example.com", "a_b@example.com", "a%b@example.com", "dave@example.com",
        "carol@sample.net", "bob@example.org", "alice@example.com"]


def test_list_pagination(server, populated):
    t, lid = populated
    seen = []
    for offset in range(0, 7, 2):
        body = server.get(t.rcpt_path(lid), params={"limit": 2, "offset": offset},
                          headers=t.h).json()
        assert (body["total"], body["limit"], body["offset"]) == (7, 2, offset)
        seen += [x["id"] for x in body["data"]]
    assert len(seen) == 7 and len(set(seen)) == 7
    for q, field in [("limit=0", "limit"), ("limit=1001", "limit"), ("offset=-3", "offset")]:
        invalid_field(server.get(t.rcpt_path(lid) + "?" + q, headers=t.h), field)


@pytest.mark.parametrize("status,want", [
    ("active", ["Zed.Upper@example.com", "a%b@example.com", "a_b@example.com",
                "alice@example.com", "carol@sample.net"]),
    ("unsubscribed", ["bob@example.org"]),
    ("bounced", ["dave@example.com"]),
    ("complained", []),
])
def test_filter_by_status(server, populated, status, want):
    t, lid = populated
    r = server.get(t.rcpt_path(lid), params={"status": status}, headers=t.h)
    assert emails(r) == want
    assert r.json()["total"] == len(want)


@pytest.mark.parametrize("status", ["gone", "Active", "all", ""])
def test_unknown_status_filter_is_422(server, populated, status):
    t, lid = populated
    invalid_field(server.get(t.rcpt_path(lid), params={"status": status}, headers=t.h),
                  "status")


@pytest.mark.parametrize("q,want", [
    ("alice", ["alice@example.com", "carol@sample.net"]),  # email, and a last name
    ("ALICE@", ["alice@example.com"]),  # email prefix, any case
    ("zed.upper@", ["Zed.Upper@example.com"]),
    ("example.org", ["bob@example.org"]),
    ("jones", ["bob@example.org"]),  # name contains
    ("smi", ["alice@example.com"]),
    ("%", ["a%b@example.com"]),  # LIKE wildcards are literal
    ("_", ["a_b@example.com"]),
    ("nobody", []),
])
def test_search(server, populated, q, want):
    t, lid = populated
    r = server.get(t.rcpt_path(lid), params={"q": q}, headers=t.h)
    assert emails(r) == want
    assert r.json()["total"] == len(want)


def test_search_combines_with_status_and_pagination(server, populated):
    t, lid = populated
    r = server.get(t.rcpt_path(lid), params={"q": "example", "status": "active"}, headers=t.h)
    assert emails(r) == ["Zed.Upper@example.com", "a%b@example.com", "a_b@example.com",
                         "alice@example.com"]
    r = server.get(t.rcpt_path(lid), params={"q": "example", "status": "active", "limit": 3,
                                             "offset": 3}, headers=t.h)
    assert r.json()["total"] == 4 and len(r.json()["data"]) == 1
    invalid_field(server.get(t.rcpt_path(lid), params={"q": "x" * 255}, headers=t.h), "q")


def test_list_unknown_list(server):
    t = Tenant(server)
    error_of(server.get(t.rcpt_path(missing_id()), headers=t.h), 404, "not_found")


# ---- isolation and scopes ----


def test_tenant_key_never_reaches_another_tenants_recipients(server):
    a, b = Tenant(server), Tenant(server)
    mine = a.make_list()
    a.add(mine["id"], "shared@example.com")
    theirs = b.make_list()
    x = b.add(theirs["id"], "shared@example.com", name="B's")

    cases = [
        ("GET", a.rcpt_path(theirs["id"]), {}),
        ("POST", a.rcpt_path(theirs["id"]), {"json": {"email": "planted@example.com"}}),
        ("GET", a.rcpt_path(theirs["id"], x["id"]), {}),
        ("PUT", a.rcpt_path(theirs["id"], x["id"]), {"json": {"status": "unsubscribed"}}),
        ("DELETE", a.rcpt_path(theirs["id"], x["id"]), {}),
        # B's recipient id through A's own list.
        ("GET", a.rcpt_path(mine["id"], x["id"]), {}),
        ("PUT", a.rcpt_path(mine["id"], x["id"]), {"json": {"name": "pwned"}}),
        ("DELETE", a.rcpt_path(mine["id"], x["id"]), {}),
        # B's own paths with A's key.
        ("GET", b.rcpt_path(theirs["id"]), {}),
        ("GET", b.rcpt_path(theirs["id"], x["id"]), {}),
        ("PUT", b.rcpt_path(theirs["id"], x["id"]), {"json": {"name": "pwned"}}),
        ("DELETE", b.rcpt_path(theirs["id"], x["id"]), {}),
        ("POST", b.rcpt_path(theirs["id"]), {"json": {"email": "planted@example.com"}}),
    ]
    for method, path, kw in cases:
        error_of(server.request(method, path, headers=a.h, **kw), 404, "not_found")
    assert b.get_recipient(theirs["id"], x["id"]) == x
    assert b.counts(theirs["id"]) == (1, 1)
    assert a.counts(mine["id"]) == (1, 1)


def test_read_only_key(server):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "ro@example.com")
    error_of(server.post(t.rcpt_path(lst["id"]), json={"email": "new@example.com"},
                         headers=t.ro), 403, "insufficient_scope")
    error_of(server.put(t.rcpt_path(lst["id"], x["id"]), json={"name": "x"}, headers=t.ro),
             403, "insufficient_scope")
    error_of(server.delete(t.rcpt_path(lst["id"], x["id"]), headers=t.ro),
             403, "insufficient_scope")
    r = server.get(t.rcpt_path(lst["id"]), headers=t.ro)
    assert r.status_code == 200 and r.json()["total"] == 1
    r = server.get(t.rcpt_path(lst["id"], x["id"]), headers=t.ro)
    assert r.status_code == 200 and r.json() == x
