"""Bulk import of recipients: CSV (streamed) and JSON, skip and upsert modes,
the report, bad rows, broken CSV, the suppression list, limits, a 50,000-row
chunked upload, isolation and scopes."""

import json
import time

import pytest
import requests

from harness import error_of, invalid_field
from listhelp import Tenant, counts_of, missing_id, report_of


def gen_chunks(text, size=65536):
    """The body as a generator, so requests sends it chunked."""
    data = text.encode() if isinstance(text, str) else text
    for i in range(0, len(data), size):
        yield data[i:i + size]


# ---- basics ----


def test_csv_import_maps_columns(server):
    t = Tenant(server)
    lst = t.make_list()
    body = ("email,name,first_name,last_name,city,plan\n"
            "ann@example.com,Ann Lee,Ann,Lee,Paris,pro\n"
            "bob@Example.COM,,Bob,,Rome,\n"
            "cy@example.com,Cy,,,,\n")
    rep = report_of(t.import_csv(lst["id"], body))
    assert set(rep) == {"total", "imported", "updated", "skipped_duplicates",
                        "skipped_suppressed", "invalid", "errors"}
    assert counts_of(rep) == dict(total=3, imported=3, updated=0, skipped_duplicates=0,
                                  skipped_suppressed=0, invalid=0)
    assert rep["errors"] == []
    got = t.by_email(lst["id"])
    assert set(got) == {"ann@example.com", "bob@example.com", "cy@example.com"}
    ann, bob, cy = got["ann@example.com"], got["bob@example.com"], got["cy@example.com"]
    assert (ann["name"], ann["first_name"], ann["last_name"]) == ("Ann Lee", "Ann", "Lee")
    assert ann["attributes"] == {"city": "Paris", "plan": "pro"}
    assert (bob["name"], bob["first_name"], bob["last_name"]) == (None, "Bob", None)
    assert bob["attributes"] == {"city": "Rome"}
    assert cy["attributes"] == {}
    for x in got.values():
        assert x["status"] == "active"
    assert t.counts(lst["id"]) == (3, 3)


def test_csv_attribute_values_are_strings(server):
    t = Tenant(server)
    lst = t.make_list()
    rep = report_of(t.import_csv(lst["id"], "email,age,vip,score\nn@example.com,42,true,1.5\n"))
    assert rep["imported"] == 1
    (x,) = t.recipients(lst["id"])
    assert x["attributes"] == {"age": "42", "vip": "true", "score": "1.5"}


def test_json_import(server):
    t = Tenant(server)
    lst = t.make_list()
    rows = [
        {"email": "j1@example.com", "name": "J One", "first_name": "J", "last_name": "One",
         "attributes": {"n": 1, "tags": ["x"], "s": "str"}},
        {"email": "J2@EXAMPLE.com"},
        {"email": "j3@example.com", "attributes": None, "name": None},
    ]
    rep = report_of(t.import_json(lst["id"], rows))
    assert counts_of(rep) == dict(total=3, imported=3, updated=0, skipped_duplicates=0,
                                  skipped_suppressed=0, invalid=0)
    got = t.by_email(lst["id"])
    assert set(got) == {"j1@example.com", "J2@example.com", "j3@example.com"}
    j1 = got["j1@example.com"]
    assert (j1["name"], j1["first_name"], j1["last_name"]) == ("J One", "J", "One")
    assert j1["attributes"] == {"n": 1, "tags": ["x"], "s": "str"}
    assert got["j3@example.com"]["attributes"] == {} and got["j3@example.com"]["name"] is None
    assert t.counts(lst["id"]) == (3, 3)


@pytest.mark.parametrize("ctype", ["text/csv; charset=utf-8", "TEXT/CSV",
                                   "text/csv;header=present"])
def test_csv_content_type_parameters(server, ctype):
    t = Tenant(server)
    lst = t.make_list()
    rep = report_of(t.import_csv(lst["id"], "email\nx@example.com\n",
                                 headers={"Content-Type": ctype}))
    assert rep["imported"] == 1


def test_json_content_type_with_charset(server):
    t = Tenant(server)
    lst = t.make_list()
    r = server.post(t.import_path(lst["id"]), data=json.dumps({"recipients": [
        {"email": "c@example.com"}]}), headers={**t.h, "Content-Type":
                                                "application/json; charset=utf-8"})
    assert report_of(r)["imported"] == 1


# ---- modes ----


def test_default_mode_skips_existing_addresses(server):
    t = Tenant(server)
    lst = t.make_list()
    old = t.add(lst["id"], "Exists@example.com", name="Old", attributes={"a": "1"})
    body = "email,name,a,b\nexists@EXAMPLE.com,New,2,3\nfresh@example.com,F,,\n"
    for mode in (None, "skip"):
        rep = report_of(t.import_csv(lst["id"], body, mode=mode))
        fresh = 1 if mode is None else 0
        assert counts_of(rep) == dict(total=2, imported=fresh, updated=0,
                                      skipped_duplicates=2 - fresh, skipped_suppressed=0,
                                      invalid=0)
        assert t.get_recipient(lst["id"], old["id"]) == old
    assert t.counts(lst["id"]) == (2, 2)


def test_upsert_updates_names_and_merges_attributes(server):
    t = Tenant(server)
    lst = t.make_list()
    a = t.add(lst["id"], "a@example.com", name="Old A", first_name="A",
              attributes={"keep": "k", "over": "old"})
    b = t.add(lst["id"], "b@example.com", name="Old B", attributes={"x": "1"})
    body = ("email,name,first_name,over,new\n"
            "A@example.com,New A,,fresh,n\n"
            "b@example.com,,Bee,,\n"
            "c@example.com,C,,,c\n")
    rep = report_of(t.import_csv(lst["id"], body, mode="upsert"))
    assert counts_of(rep) == dict(total=3, imported=1, updated=2, skipped_duplicates=0,
                                  skipped_suppressed=0, invalid=0)
    got = t.by_email(lst["id"])
    ga, gb = got["a@example.com"], got["b@example.com"]
    assert ga["id"] == a["id"] and gb["id"] == b["id"]
    assert (ga["name"], ga["first_name"]) == ("New A", "A")  # an empty cell keeps the value
    assert ga["attributes"] == {"keep": "k", "over": "fresh", "new": "n"}
    assert (gb["name"], gb["first_name"]) == ("Old B", "Bee")
    assert gb["attributes"] == {"x": "1"}
    assert got["c@example.com"]["attributes"] == {"new": "c"}
    assert t.counts(lst["id"]) == (3, 3)


def test_upsert_json_merges_top_level_keys(server):
    t = Tenant(server)
    lst = t.make_list()
    t.add(lst["id"], "m@example.com", attributes={"a": {"deep": 1}, "b": 2})
    rep = report_of(t.import_json(lst["id"], [{"email": "M@example.com", "name": "M",
                                               "attributes": {"a": {"other": 3}, "c": 4}}],
                                  mode="upsert"))
    assert (rep["updated"], rep["imported"]) == (1, 0)
    (x,) = t.recipients(lst["id"])
    assert x["name"] == "M"
    assert x["attributes"] == {"a": {"other": 3}, "b": 2, "c": 4}


@pytest.mark.parametrize("mode", ["replace", "SKIP", "Upsert", ""])
def test_bad_mode_is_422(server, mode):
    t = Tenant(server)
    lst = t.make_list()
    invalid_field(t.import_csv(lst["id"], "email\nx@example.com\n", mode=mode), "mode")
    assert t.counts(lst["id"]) == (0, 0)


# ---- duplicates, suppression ----


def test_duplicates_inside_one_payload_count_once(server):
    t = Tenant(server)
    lst = t.make_list()
    body = ("email,name\n"
            "dup@example.com,first\n"
            "DUP@example.com,second\n"
            "other@example.com,o\n"
            "Dup@EXAMPLE.COM,third\n")
    rep = report_of(t.import_csv(lst["id"], body))
    assert counts_of(rep) == dict(total=4, imported=2, updated=0, skipped_duplicates=2,
                                  skipped_suppressed=0, invalid=0)
    got = t.by_email(lst["id"])
    assert got["dup@example.com"]["name"] == "first"
    rep = report_of(t.import_json(lst["id"], [{"email": "j@example.com"},
                                              {"email": "J@Example.com"}]))
    assert (rep["imported"], rep["skipped_duplicates"]) == (1, 1)
    assert t.counts(lst["id"]) == (3, 3)


def test_duplicates_and_upserts_across_batches(server_factory):
    """With batches of 3 rows, repeats and existing rows fall in other batches."""
    srv = server_factory(args=["--import-batch-size", "3"])
    t = Tenant(srv)
    lst = t.make_list()
    t.add(lst["id"], "e1@example.com", name="E1", attributes={"k": "old"})
    t.add(lst["id"], "e2@example.com", name="E2")
    lines = ["email,name,k"]
    lines += [f"n{i}@example.com,N{i},v" for i in range(10)]
    lines += ["N0@example.com,again,", "e1@example.com,E1 new,new", "n9@EXAMPLE.com,x,",
              "bad-address,,", "e2@example.com,,"]
    body = "\n".join(lines) + "\n"
    rep = report_of(t.import_csv(lst["id"], body, mode="upsert"))
    assert counts_of(rep) == dict(total=15, imported=10, updated=2, skipped_duplicates=2,
                                  skipped_suppressed=0, invalid=1)
    assert rep["errors"] == [{"line": 15, "email": "bad-address", "reason": rep["errors"][0][
        "reason"]}]
    got = t.by_email(lst["id"])
    assert len(got) == 12
    assert got["n0@example.com"]["name"] == "N0"
    assert got["e1@example.com"]["name"] == "E1 new"
    assert got["e1@example.com"]["attributes"] == {"k": "new"}
    assert got["e2@example.com"]["name"] == "E2"
    assert t.counts(lst["id"]) == (12, 12)

    # Skip mode on the same server: everything is already there.
    rep = report_of(t.import_csv(lst["id"], body))
    assert counts_of(rep) == dict(total=15, imported=0, updated=0, skipped_duplicates=14,
                                  skipped_suppressed=0, invalid=1)


def test_suppressed_addresses_are_never_reactivated(server):
    t = Tenant(server)
    lst = t.make_list()
    inlist = t.add(lst["id"], "member@example.com", name="Member")
    assert t.suppress("MEMBER@example.com").status_code == 201
    assert t.suppress("outsider@Example.com").status_code == 201
    assert t.counts(lst["id"]) == (1, 0)
    body = ("email,name\n"
            "member@example.com,Renamed\n"
            "Outsider@EXAMPLE.com,Out\n"
            "welcome@example.com,W\n")
    rep = report_of(t.import_csv(lst["id"], body))
    assert counts_of(rep) == dict(total=3, imported=1, updated=0, skipped_duplicates=0,
                                  skipped_suppressed=2, invalid=0)
    rep = report_of(t.import_csv(lst["id"], body, mode="upsert"))
    assert counts_of(rep) == dict(total=3, imported=0, updated=1, skipped_duplicates=0,
                                  skipped_suppressed=2, invalid=0)
    rep = report_of(t.import_json(lst["id"], [{"email": "outsider@example.com"},
                                              {"email": "Member@Example.com", "name": "R"}],
                                  mode="upsert"))
    assert (rep["skipped_suppressed"], rep["imported"], rep["updated"]) == (2, 0, 0)
    got = t.by_email(lst["id"])
    assert set(got) == {"member@example.com", "welcome@example.com"}
    m = got["member@example.com"]
    assert m["status"] == "unsubscribed" and m["name"] == "Member" and m["id"] == inlist["id"]
    assert t.counts(lst["id"]) == (2, 1)


# ---- bad rows ----


def test_bad_rows_are_reported_and_never_abort(server):
    t = Tenant(server)
    lst = t.make_list()
    long_name = "n" * 256
    body = ("email,name\n"                      # 1
            "good1@example.com,G1\n"            # 2
            "no-at-sign,x\n"                    # 3
            "two@@example.com,x\n"              # 4
            ",missing\n"                        # 5
            "good2@example.com,G2\n"            # 6
            f"long@example.com,{long_name}\n"   # 7
            "sp ace@example.com,x\n"            # 8
            "good3@example.com,G3\n")           # 9
    rep = report_of(t.import_csv(lst["id"], body))
    assert counts_of(rep) == dict(total=8, imported=3, updated=0, skipped_duplicates=0,
                                  skipped_suppressed=0, invalid=5)
    assert [(e["line"], e["email"]) for e in rep["errors"]] == [
        (3, "no-at-sign"), (4, "two@@example.com"), (5, ""), (7, "long@example.com"),
        (8, "sp ace@example.com")]
    assert sorted(t.by_email(lst["id"])) == ["good1@example.com", "good2@example.com",
                                             "good3@example.com"]
    assert t.counts(lst["id"]) == (3, 3)


def test_json_bad_entries_are_reported_by_position(server):
    t = Tenant(server)
    lst = t.make_list()
    rows = [
        {"email": "ok1@example.com"},
        "just-a-string@example.com",
        {"email": 5},
        {"email": "attrs@example.com", "attributes": [1, 2]},
        {"name": "no email"},
        {"email": "bad@"},
        {"email": "ok2@example.com", "name": "n" * 256},
        {"email": "ok3@example.com", "first_name": 7},
        {"email": "ok4@example.com"},
    ]
    rep = report_of(t.import_json(lst["id"], rows))
    assert counts_of(rep) == dict(total=9, imported=2, updated=0, skipped_duplicates=0,
                                  skipped_suppressed=0, invalid=7)
    assert [e["line"] for e in rep["errors"]] == [2, 3, 4, 5, 6, 7, 8]
    assert sorted(t.by_email(lst["id"])) == ["ok1@example.com", "ok4@example.com"]


def test_only_the_first_100_errors_are_listed(server):
    t = Tenant(server)
    lst = t.make_list()
    body = "email\n" + "".join(f"bad{i}\n" for i in range(150)) + "fine@example.com\n"
    rep = report_of(t.import_csv(lst["id"], body))
    assert counts_of(rep) == dict(total=151, imported=1, updated=0, skipped_duplicates=0,
                                  skipped_suppressed=0, invalid=150)
    assert len(rep["errors"]) == 100
    assert [e["line"] for e in rep["errors"]] == list(range(2, 102))
    assert rep["errors"][0]["email"] == "bad0" and rep["errors"][-1]["email"] == "bad99"


def test_address_normalisation_on_import(server):
    t = Tenant(server)
    lst = t.make_list()
    body = ("email\n"
            "Kim@Bücher.DE\n"
            "kim@xn--bcher-kva.de\n"
            "MiXeD@Example.ORG\n"
            "a@☃.com\n"
            + "x" * 65 + "@example.com\n")
    rep = report_of(t.import_csv(lst["id"], body.encode()))
    assert counts_of(rep) == dict(total=5, imported=2, updated=0, skipped_duplicates=1,
                                  skipped_suppressed=0, invalid=2)
    assert sorted(t.by_email(lst["id"])) == ["Kim@xn--bcher-kva.de", "MiXeD@example.org"]
    assert [e["line"] for e in rep["errors"]] == [5, 6]


def test_nul_byte_makes_the_row_invalid(server):
    t = Tenant(server)
    lst = t.make_list()
    body = b"email,note\nnul@example.com,a\x00b\nfine@example.com,ok\n"
    rep = report_of(t.import_csv(lst["id"], body))
    assert (rep["total"], rep["imported"], rep["invalid"]) == (2, 1, 1)
    assert rep["errors"][0]["line"] == 2
    assert sorted(t.by_email(lst["id"])) == ["fine@example.com"]


def test_upsert_keeps_the_status(server):
    t = Tenant(server)
    lst = t.make_list()
    x = t.add(lst["id"], "gone@example.com", name="Old")
    t.put_recipient(lst["id"], x["id"], status="unsubscribed")
    rep = report_of(t.import_csv(lst["id"], "email,name\ngone@example.com,New\n", mode="upsert"))
    assert rep["updated"] == 1
    y = t.get_recipient(lst["id"], x["id"])
    assert (y["name"], y["status"]) == ("New", "unsubscribed")
    assert t.counts(lst["id"]) == (1, 0)


def test_invalid_utf8_makes_the_row_invalid(server):
    t = Tenant(server)
    lst = t.make_list()
    body = (b"email,name,city\n"
            b"ok1@example.com,Ren\xc3\xa9,Z\xc3\xbcrich\n"
            b"latin1@example.com,Ren\xe9,x\n"
            b"\xffbad@example.com,n,x\n"
            b"ok2@example.com,truncated \xe2\x82,x\n"
            b"ok3@example.com,fine,x\n")
    rep = report_of(t.import_csv(lst["id"], body))
    assert counts_of(rep) == dict(total=5, imported=2, updated=0, skipped_duplicates=0,
                                  skipped_suppressed=0, invalid=3)
    assert [e["line"] for e in rep["errors"]] == [3, 4, 5]
    got = t.by_email(lst["id"])
    assert sorted(got) == ["ok1@example.com", "ok3@example.com"]
    assert got["ok1@example.com"]["name"] == "René"
    assert got["ok1@example.com"]["attributes"] == {"city": "Zürich"}
    # The report itself is valid JSON text (requests decoded it above).


# ---- CSV format ----


TRICKY_CSV = (
    "\ufeff Email ,NAME,first_name,Last_Name,note,city\r\n"   # 1: BOM, case, spaces
    "\r\n"                                                  # 2: blank
    "a@example.com,\"Smith, John\",John,Smith,\"line one\r\nline two\",Zürich\r\n"  # 3-4
    "\r\n"                                                  # 5
    "not-an-address,x,,,,\r\n"                              # 6
    "b@example.com,John \"JJ\" Smith,,,\"say \"\"hi\"\"\",,extra1,extra2\r\n"  # 7
    "c@example.com\r\n"                                     # 8: short row
    ",,,,,\r\n"                                             # 9: empty cells only
    "d@example.com,D,,,\"multi\nline\nnote\",Kyiv\r\n"      # 10-12
    "also bad,,,,,\r\n"                                     # 13
    "e@example.com,'=1+2,'-x,'plain,'@at,'+plus"            # 14: no final newline
).encode()


def check_tricky(t, lid, rep):
    assert counts_of(rep) == dict(total=7, imported=5, updated=0, skipped_duplicates=0,
                                  skipped_suppressed=0, invalid=2)
    assert [(e["line"], e["email"]) for e in rep["errors"]] == [(6, "not-an-address"),
                                                                (13, "also bad")]
    got = t.by_email(lid)
    assert sorted(got) == ["a@example.com", "b@example.com", "c@example.com", "d@example.com",
                           "e@example.com"]
    a, b, c, d, e = (got[k] for k in sorted(got))
    assert (a["name"], a["first_name"], a["last_name"]) == ("Smith, John", "John", "Smith")
    assert a["attributes"] == {"note": "line one\r\nline two", "city": "Zürich"}
    assert b["name"] == 'John "JJ" Smith'
    assert b["attributes"] == {"note": 'say "hi"'}
    assert (c["name"], c["attributes"]) == (None, {})
    assert d["attributes"] == {"note": "multi\nline\nnote", "city": "Kyiv"}
    # A leading apostrophe that neutralises a formula is removed; any other stays.
    assert (e["name"], e["first_name"], e["last_name"]) == ("=1+2", "-x", "'plain")
    assert e["attributes"] == {"note": "@at", "city": "+plus"}
    assert t.counts(lid) == (5, 5)


def test_csv_quoting_newlines_bom_blank_lines_and_extra_columns(server):
    t = Tenant(server)
    lst = t.make_list()
    check_tricky(t, lst["id"], report_of(t.import_csv(lst["id"], TRICKY_CSV)))


def test_csv_split_into_one_byte_chunks(server):
    t = Tenant(server)
    lst = t.make_list()

    def one_by_one():
        for i in range(len(TRICKY_CSV)):
            yield TRICKY_CSV[i:i + 1]

    check_tricky(t, lst["id"], report_of(t.import_csv(lst["id"], one_by_one())))


def test_csv_lf_and_crlf_give_the_same_result(server):
    t = Tenant(server)
    rows = ["email,name,tag", "lf@example.com,L F,t1", "\"q@example.com\",\"Q, uoted\",t2"]
    results = []
    for sep in ("\n", "\r\n"):
        lst = t.make_list()
        report_of(t.import_csv(lst["id"], sep.join(rows) + sep))
        results.append(sorted((x["email"], x["name"], json.dumps(x["attributes"]))
                              for x in t.recipients(lst["id"])))
    assert results[0] == results[1] == [("lf@example.com", "L F", '{"tag": "t1"}'),
                                        ("q@example.com", "Q, uoted", '{"tag": "t2"}')]


def test_blank_lines_before_the_header(server):
    t = Tenant(server)
    lst = t.make_list()
    rep = report_of(t.import_csv(lst["id"], "\n\r\nemail\nz@example.com\n\nbroken\n"))
    assert (rep["imported"], rep["invalid"]) == (1, 1)
    assert rep["errors"][0]["line"] == 6


@pytest.mark.parametrize("body", [b"", b"\n\n", b"\xef\xbb\xbf"])
def test_empty_csv_is_400(server, body):
    t = Tenant(server)
    lst = t.make_list()
    r = t.import_csv(lst["id"], body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert t.counts(lst["id"]) == (0, 0)


@pytest.mark.parametrize("body", ["name,city\nAnn,Paris\n", "mail,name\na@example.com,A\n"])
def test_csv_without_email_column_is_400(server, body):
    t = Tenant(server)
    lst = t.make_list()
    r = t.import_csv(lst["id"], body)
    assert r.status_code == 400, r.text
    assert "email" in r.json()["error"]["message"]
    assert t.counts(lst["id"]) == (0, 0)


@pytest.mark.parametrize("header", ["email,city,city", "email,,city", "Email,EMAIL"])
def test_csv_header_with_empty_or_repeated_column_is_400(server, header):
    t = Tenant(server)
    lst = t.make_list()
    r = t.import_csv(lst["id"], header + "\na@example.com,x,y\n")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert "line 1" in r.json()["error"]["message"]
    assert t.counts(lst["id"]) == (0, 0)


def test_unterminated_quote_is_400_naming_the_line(server):
    t = Tenant(server)
    lst = t.make_list()
    body = ("email,note\n"
            "before1@example.com,a\n"
            "before2@example.com,\"multi\nline\"\n"
            "before3@example.com,b\n"
            "broken@example.com,\"never closed\n"
            "after@example.com,c\n")
    r = t.import_csv(lst["id"], body)
    assert r.status_code == 400, r.text
    body_json = r.json()
    assert body_json["error"]["code"] == "bad_request"
    assert "line 6" in body_json["error"]["message"], body_json
    assert body_json["imported"] == 3 and body_json["total"] == 3
    assert sorted(t.by_email(lst["id"])) == ["before1@example.com", "before2@example.com",
                                             "before3@example.com"]
    assert t.counts(lst["id"]) == (3, 3)


def test_unterminated_quote_in_a_large_upload(server_factory):
    """The open quote would swallow the rest of the file; the import stops at it,
    with the rows of earlier batches and of the current batch written."""
    srv = server_factory(args=["--import-batch-size", "100"])
    t = Tenant(srv)
    lst = t.make_list()
    head = "email,note\n" + "".join(f"ok{i}@example.com,n\n" for i in range(250))
    broken_line = 2 + 250
    tail = "x@example.com,\"open\n" + "".join(f"z{i}@example.com,filler text here\n"
                                               for i in range(5000))
    r = t.import_csv(lst["id"], gen_chunks(head + tail, 4096))
    assert r.status_code == 400, r.text
    assert f"line {broken_line}" in r.json()["error"]["message"], r.text
    assert r.json()["imported"] == 250
    assert t.counts(lst["id"]) == (250, 250)


def test_overlong_line_is_400_naming_the_line(server):
    t = Tenant(server)
    lst = t.make_list()
    body = ("email,note\n"
            "first@example.com,a\n"
            "second@example.com,b\n"
            "huge@example.com," + "y" * 70_000 + "\n"
            "after@example.com,c\n")
    r = t.import_csv(lst["id"], body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert "line 4" in r.json()["error"]["message"], r.text
    assert r.json()["imported"] == 2
    assert sorted(t.by_email(lst["id"])) == ["first@example.com", "second@example.com"]


# ---- content types, limits, errors ----


@pytest.mark.parametrize("headers", [{"Content-Type": "text/plain"},
                                     {"Content-Type": "application/x-www-form-urlencoded"},
                                     {"Content-Type": "multipart/form-data; boundary=x"},
                                     {"Content-Type": "text/csvx"},
                                     {}])
def test_wrong_content_type_is_415(server, headers):
    t = Tenant(server)
    lst = t.make_list()
    h = {k: v for k, v in t.h.items()}
    h.update(headers)
    r = server.post(t.import_path(lst["id"]), data=b"email\nx@example.com\n", headers=h)
    error_of(r, 415, "unsupported_media_type")
    assert t.counts(lst["id"]) == (0, 0)


def test_json_body_errors(server):
    t = Tenant(server)
    lst = t.make_list()
    jh = {**t.h, "Content-Type": "application/json"}
    error_of(server.post(t.import_path(lst["id"]), data="{broken", headers=jh),
             400, "malformed_json")
    for doc in ({}, {"recipients": {"email": "a@example.com"}}, {"recipients": "x"}, [1],
                {"emails": []}):
        invalid_field(server.post(t.import_path(lst["id"]), data=json.dumps(doc), headers=jh),
                      "recipients")
    rep = report_of(t.import_json(lst["id"], []))
    assert counts_of(rep) == dict(total=0, imported=0, updated=0, skipped_duplicates=0,
                                  skipped_suppressed=0, invalid=0)


def test_import_into_unknown_list_is_404(server):
    t = Tenant(server)
    error_of(t.import_csv(missing_id(), "email\nx@example.com\n"), 404, "not_found")
    error_of(t.import_json(missing_id(), [{"email": "x@example.com"}]), 404, "not_found")


def test_json_import_size_limit(server_factory):
    srv = server_factory(args=["--import-max-json", "1024"])
    t = Tenant(srv)
    lst = t.make_list()
    path = t.import_path(lst["id"])
    jh = {**t.h, "Content-Type": "application/json"}

    def padded(n, email):
        doc = json.dumps({"recipients": [{"email": email}]})
        doc = doc[:-1] + " " * (n - len(doc)) + "}"
        assert len(doc.encode()) == n
        return doc

    rep = report_of(srv.post(path, data=padded(1024, "fits@example.com"), headers=jh))
    assert rep["imported"] == 1
    error_of(srv.post(path, data=padded(1025, "too-big@example.com"), headers=jh),
             413, "payload_too_large")
    big = json.dumps({"recipients": [{"email": f"u{i}@example.com"} for i in range(200)]})
    error_of(srv.post(path, data=big, headers=jh), 413, "payload_too_large")
    error_of(srv.post(path, data=gen_chunks(big, 100), headers=jh), 413, "payload_too_large")
    assert t.counts(lst["id"]) == (1, 1)
    # CSV has no such limit.
    csv_body = "email\n" + "".join(f"c{i}@example.com\n" for i in range(500))
    assert len(csv_body) > 4 * 1024
    assert report_of(t.import_csv(lst["id"], csv_body))["imported"] == 500
    assert t.counts(lst["id"]) == (501, 501)


# ---- scale ----


@pytest.mark.slow(9)
def test_streamed_50000_row_csv(server):
    t = Tenant(server)
    lst = t.make_list()
    lid = lst["id"]
    # 100 addresses already in the list, 50 on the suppression list.
    report_of(t.import_csv(lid, "email\n" + "".join(f"pre{i}@bulk.example\n"
                                                     for i in range(100))))
    r = server.post(f"{t.unsub_path}/import", headers=t.h, timeout=60,
                    json={"emails": [f"supp{i}@bulk.example" for i in range(50)]})
    assert r.status_code == 201, r.text

    n_main = 49_500
    invalid = [i for i in range(n_main) if i % 997 == 0]  # 50 rows without "@"
    repeats = []
    k = 1
    while len(repeats) < 200:
        if k % 997:
            repeats.append(k)
        k += 241
    rows_total = n_main + len(repeats) + 100 + 50 + 150
    assert rows_total == 50_000

    def body():
        yield b"email,name,segment\n"
        chunk = []
        for i in range(n_main):
            at = "." if i % 997 == 0 else "@"
            chunk.append(f"user{i}{at}bulk.example,User {i},s{i % 5}\n")
            if len(chunk) == 2000:
                yield "".join(chunk).encode()
                chunk = []
        chunk += [f"USER{j}@BULK.EXAMPLE,Repeat,r\n" for j in repeats]
        chunk += [f"pre{i}@bulk.example,Pre,p\n" for i in range(100)]
        chunk += [f"Supp{i}@bulk.example,Supp,s\n" for i in range(50)]
        chunk += [f"tail{i}@bulk.example,Tail {i},t\n" for i in range(150)]
        yield "".join(chunk).encode()

    started = time.monotonic()
    rep = report_of(t.import_csv(lid, body(), timeout=300))
    elapsed = time.monotonic() - started
    imported = n_main - len(invalid) + 150
    assert counts_of(rep) == dict(total=50_000, imported=imported, updated=0,
                                  skipped_duplicates=200 + 100, skipped_suppressed=50,
                                  invalid=len(invalid))
    assert [e["line"] for e in rep["errors"]] == [i + 2 for i in invalid]
    assert t.counts(lid) == (100 + imported, 100 + imported)
    assert elapsed < 120, f"50,000 rows took {elapsed:.1f}s"

    r = server.get(t.rcpt_path(lid), params={"q": "user12345@"}, headers=t.h)
    (x,) = r.json()["data"]
    assert (x["email"], x["name"], x["attributes"]) == (
        "user12345@bulk.example", "User 12345", {"segment": "s0"})
    assert server.get(t.rcpt_path(lid), params={"q": "user997@"},
                      headers=t.h).json()["total"] == 0
    assert server.get(t.rcpt_path(lid), params={"q": "supp"}, headers=t.h).json()["total"] == 0
    r = server.get(t.rcpt_path(lid), params={"q": "user1@"}, headers=t.h)
    assert r.json()["data"][0]["name"] == "User 1"  # the repeat did not overwrite it

    header, rows = t.export_table(lid)
    assert header == ["email", "name", "first_name", "last_name", "segment"]
    assert len(rows) == 100 + imported
    assert len({row[0] for row in rows}) == len(rows)


def test_upsert_of_a_large_import_finishes(server_factory):
    """An upsert over rows that already exist must scale like an insert: 30,000
    existing rows are updated in well under 30 s (an insert takes about one)."""
    srv = server_factory()
    t = Tenant(srv)
    lid = t.make_list()["id"]
    n = 30_000

    def body(name):
        yield b"email,name,round\n"
        for start in range(0, n, 3000):
            yield "".join(f"up{i}@bulk.example,{name} {i},{name}\n"
                          for i in range(start, start + 3000)).encode()

    rep = report_of(t.import_csv(lid, body("First"), timeout=120))
    assert rep["imported"] == n
    started = time.monotonic()
    try:
        r = t.import_csv(lid, body("Second"), mode="upsert", timeout=30)
    except requests.exceptions.RequestException as e:
        pytest.fail(f"an upsert of {n} existing rows did not answer within 30 s "
                    f"({type(e).__name__})")
    rep = report_of(r)
    assert counts_of(rep) == dict(total=n, imported=0, updated=n, skipped_duplicates=0,
                                  skipped_suppressed=0, invalid=0)
    assert time.monotonic() - started < 30
    r = srv.get(t.rcpt_path(lid), params={"q": "up29999@"}, headers=t.h)
    (x,) = r.json()["data"]
    assert (x["name"], x["attributes"]) == ("Second 29999", {"round": "Second"})
    assert t.counts(lid) == (n, n)


# ---- isolation and scopes ----


def test_import_into_another_tenants_list_is_404(server):
    a, b = Tenant(server), Tenant(server)
    theirs = b.make_list()
    error_of(a.import_csv(theirs["id"], "email\nplanted@example.com\n"), 404, "not_found")
    error_of(a.import_json(theirs["id"], [{"email": "planted@example.com"}]), 404, "not_found")
    # B's own path with A's key.
    r = server.post(b.import_path(theirs["id"]), data="email\nplanted@example.com\n",
                    headers={**a.h, "Content-Type": "text/csv"})
    error_of(r, 404, "not_found")
    assert b.counts(theirs["id"]) == (0, 0)


def test_read_only_key_cannot_import(server):
    t = Tenant(server)
    lst = t.make_list()
    r = server.post(t.import_path(lst["id"]), data="email\nx@example.com\n",
                    headers={**t.ro, "Content-Type": "text/csv"})
    error_of(r, 403, "insufficient_scope")
    r = server.post(t.import_path(lst["id"]), json={"recipients": [{"email": "x@example.com"}]},
                    headers=t.ro)
    error_of(r, 403, "insufficient_scope")
    assert t.counts(lst["id"]) == (0, 0)
