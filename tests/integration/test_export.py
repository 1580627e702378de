"""CSV export of a list's recipients: columns, quoting, formula neutralisation,
the status filter, streaming across pages, the round trip through import,
isolation and scopes."""

from harness import error_of, invalid_field
from listhelp import EXPORT_FIXED, Tenant, missing_id, parse_csv, report_of


def test_export_columns_and_cells(server):
    t = Tenant(server)
    lid = t.make_list()["id"]
    t.add(lid, "full@example.com", name="Full Name", first_name="Full", last_name="Name",
          attributes={"city": "Oslo", "age": 42, "vip": True, "nested": {"a": [1]},
                      "gone": None})
    t.add(lid, "bare@Example.COM")
    t.add(lid, "other@example.com", attributes={"zone": "z1"})
    r = t.export(lid)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv"), r.headers
    assert "attachment" in r.headers.get("Content-Disposition", "")
    header, rows = parse_csv(r.content.decode("utf-8"))
    assert header == EXPORT_FIXED + ["age", "city", "gone", "nested", "vip", "zone"]
    assert sorted(rows) == sorted([
        ["full@example.com", "Full Name", "Full", "Name", "42", "Oslo", "", '{"a":[1]}',
         "true", ""],
        ["bare@example.com", "", "", "", "", "", "", "", "", ""],
        ["other@example.com", "", "", "", "", "", "", "", "", "z1"],
    ])


def test_export_of_an_empty_list(server):
    t = Tenant(server)
    lid = t.make_list()["id"]
    r = t.export(lid)
    assert r.status_code == 200
    assert r.text.rstrip("\r\n") == "email,name,first_name,last_name"
    assert parse_csv(r.text) == (EXPORT_FIXED, [])


def test_attribute_columns_are_sorted(server):
    t = Tenant(server)
    lid = t.make_list()["id"]
    keys = ["b", "B", "a", "_x", "Zeta", "é", "a b", "10", "2"]
    t.add(lid, "k1@example.com", attributes={k: "v" for k in keys[:5]})
    t.add(lid, "k2@example.com", attributes={k: "w" for k in keys[4:]})
    header, rows = t.export_table(lid)
    assert header == EXPORT_FIXED + sorted(keys)


def test_quoting(server):
    t = Tenant(server)
    lid = t.make_list()["id"]
    attrs = {"comma": "a, b", "quote": 'say "hi"', "lf": "one\ntwo", "crlf": "one\r\ntwo",
             "spaces": "  padded  ", "unicode": "Zürich ✓ 東京", "semicolon": "a;b"}
    t.add(lid, "q@example.com", name='O\'Brien, "Bob"', attributes=attrs)
    header, rows = t.export_table(lid)
    assert header == EXPORT_FIXED + sorted(attrs)
    assert rows == [["q@example.com", 'O\'Brien, "Bob"', "", ""] + [attrs[k]
                                                                    for k in sorted(attrs)]]


FORMULAS = ["=1+2", "+cmd", "-10", "@SUM(A1)"]


def test_formula_cells_are_neutralised(server):
    t = Tenant(server)
    lid = t.make_list()["id"]
    t.add(lid, "-dash@example.com", name="=HYPERLINK(\"x\")", first_name="+1",
          last_name="-2", attributes={"f": "@x", "safe": "a=b", "minus": "x-y",
                                      "apos": "'already"})
    r = t.export(lid)
    header, rows = parse_csv(r.content.decode())
    assert header == EXPORT_FIXED + ["apos", "f", "minus", "safe"]
    assert rows == [["'-dash@example.com", "'=HYPERLINK(\"x\")", "'+1", "'-2", "'already",
                     "'@x", "x-y", "a=b"]]


def test_status_filter(server):
    t = Tenant(server)
    lid = t.make_list()["id"]
    a = t.add(lid, "a@example.com", attributes={"only_a": "1"})
    b = t.add(lid, "b@example.com")
    c = t.add(lid, "c@example.com")
    t.put_recipient(lid, b["id"], status="unsubscribed")
    t.put_recipient(lid, c["id"], status="bounced")
    expect = {"active": ["a@example.com"], "unsubscribed": ["b@example.com"],
              "bounced": ["c@example.com"], "complained": []}
    for status, want in expect.items():
        header, rows = t.export_table(lid, status=status)
        assert header == EXPORT_FIXED + ["only_a"]  # the columns do not depend on the filter
        assert sorted(row[0] for row in rows) == want, status
    header, rows = t.export_table(lid)
    assert sorted(row[0] for row in rows) == ["a@example.com", "b@example.com", "c@example.com"]
    assert a["status"] == "active"
    for bad in ("bogus", "ACTIVE", ""):
        invalid_field(t.export(lid, status=bad), "status")


def test_export_streams_more_than_one_page(server):
    t = Tenant(server)
    lid = t.make_list()["id"]
    n = 2500
    body = "email,name,n\n" + "".join(f"p{i}@pages.example,P {i},{i}\n" for i in range(n))
    assert report_of(t.import_csv(lid, body))["imported"] == n
    r = t.export(lid)
    assert r.headers.get("Transfer-Encoding") == "chunked" or "Content-Length" not in r.headers
    header, rows = parse_csv(r.content.decode())
    assert header == EXPORT_FIXED + ["n"]
    assert len(rows) == n
    assert sorted(int(row[4]) for row in rows) == list(range(n))
    assert all(row[1] == f"P {row[4]}" and row[0] == f"p{row[4]}@pages.example" for row in rows)


def test_lines_end_the_same_way(server):
    """The header row and the data rows use one line terminator."""
    t = Tenant(server)
    lid = t.make_list()["id"]
    t.add(lid, "l1@example.com", name="One")
    t.add(lid, "l2@example.com", name="Two")
    raw = t.export(lid).content
    lines = raw.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4, raw
    endings = {line.endswith(b"\r") for line in lines[:-1]}
    assert len(endings) == 1, f"mixed line endings in the export: {raw!r}"


# ---- round trip ----


ROUND_TRIP = [
    dict(email="plain@example.com", name="Plain", first_name="P", last_name="Lain",
         attributes={"city": "Paris", "plan": "pro"}),
    dict(email="-dash@example.com", name="=1+2", first_name="+33 1 23", last_name="-minus",
         attributes={"formula": "@SUM(A1)", "city": "-"}),
    dict(email="+plus@example.com", name='Quote "Q" Person, Jr.',
         attributes={"note": "line 1\nline 2", "crlf": "a\r\nb", "spaces": "  both  "}),
    dict(email="=eq@example.com", name="  Padded  ", attributes={"unicode": "Zürich ✓ 東京"}),
    dict(email="Mixed.Case@Example.COM", attributes={"plan": "free", "apos": "'kept"}),
]


def test_round_trip(server):
    t = Tenant(server)
    src = t.make_list()["id"]
    for person in ROUND_TRIP:
        t.add(src, **person)
    first = t.export(src)
    assert first.status_code == 200
    h1, rows1 = parse_csv(first.content.decode())

    dst = t.make_list()["id"]
    rep = report_of(t.import_csv(dst, first.content))
    assert (rep["total"], rep["imported"], rep["invalid"]) == (len(ROUND_TRIP),
                                                                len(ROUND_TRIP), 0), rep
    h2, rows2 = t.export_table(dst)
    assert h2 == h1
    assert sorted(rows2) == sorted(rows1)

    def data(lid):
        return sorted((x["email"], x["name"], x["first_name"], x["last_name"],
                       sorted(x["attributes"].items())) for x in t.recipients(lid))

    assert data(dst) == data(src)
    assert t.counts(dst) == t.counts(src) == (len(ROUND_TRIP), len(ROUND_TRIP))


def test_round_trip_keeps_attribute_names_that_look_like_formulas(server):
    t = Tenant(server)
    src = t.make_list()["id"]
    attrs = {"-neg": "1", "=eq": "2", "+plus": "3", "@at": "4", "plain": "5"}
    t.add(src, "keys@example.com", attributes=attrs)
    exported = t.export(src).content
    dst = t.make_list()["id"]
    assert report_of(t.import_csv(dst, exported))["imported"] == 1
    (x,) = t.recipients(dst)
    assert x["attributes"] == attrs
    h1, _ = parse_csv(exported.decode())
    h2, _ = t.export_table(dst)
    assert h2 == h1


def test_round_trip_keeps_attribute_names_with_capitals(server):
    t = Tenant(server)
    src = t.make_list()["id"]
    attrs = {"City": "Oslo", "PostCode": "0150", "lower": "x"}
    t.add(src, "caps@example.com", attributes=attrs)
    exported = t.export(src).content
    h1, rows1 = parse_csv(exported.decode())
    assert h1 == EXPORT_FIXED + ["City", "PostCode", "lower"]
    dst = t.make_list()["id"]
    assert report_of(t.import_csv(dst, exported))["imported"] == 1
    h2, rows2 = t.export_table(dst)
    assert (h2, rows2) == (h1, rows1)
    (x,) = t.recipients(dst)
    assert x["attributes"] == attrs


def test_export_stays_importable_with_attributes_named_like_columns(server):
    t = Tenant(server)
    src = t.make_list()["id"]
    t.add(src, "clash@example.com", name="Real Name",
          attributes={"Name": "attr name", "EMAIL": "other@example.com", "city": "Oslo"})
    exported = t.export(src).content
    header, rows = parse_csv(exported.decode())
    lowered = [h.strip().lower() for h in header]
    assert len(set(lowered)) == len(lowered), header  # no column twice for an import
    assert header[:4] == EXPORT_FIXED and "city" in header
    assert rows[0][:2] == ["clash@example.com", "Real Name"]
    dst = t.make_list()["id"]
    rep = report_of(t.import_csv(dst, exported))
    assert (rep["imported"], rep["invalid"]) == (1, 0)
    (x,) = t.recipients(dst)
    assert (x["email"], x["name"]) == ("clash@example.com", "Real Name")
    assert x["attributes"]["city"] == "Oslo"


# ---- isolation and scopes ----


def test_export_unknown_list(server):
    t = Tenant(server)
    error_of(t.export(missing_id()), 404, "not_found")
    error_of(t.export("not-a-uuid"), 404, "not_found")


def test_export_of_another_tenants_list_is_404(server):
    a, b = Tenant(server), Tenant(server)
    theirs = b.make_list()["id"]
    b.add(theirs, "secret@example.com")
    error_of(a.export(theirs), 404, "not_found")  # A's path, B's list
    error_of(server.get(b.export_path(theirs), headers=a.h), 404, "not_found")  # B's path
    r = b.export(theirs)
    assert r.status_code == 200 and "secret@example.com" in r.text


def test_read_only_key_can_export(server):
    t = Tenant(server)
    lid = t.make_list()["id"]
    t.add(lid, "ro@example.com")
    r = t.export(lid, headers=t.ro)
    assert r.status_code == 200, r.text
    assert parse_csv(r.text)[1] == [["ro@example.com", "", "", ""]]
