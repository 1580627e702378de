"""Reports that name no message by a valid signed reference (issue 10): kept
for the operator only, read through GET /api/v1/bounces/unmatched (paged,
without the raw message) and GET /api/v1/bounces/unmatched/{id} (with it);
a tenant's key gets 403, a tenant's own record is not unmatched, and they
are pruned after bounce_retention_days like every record.  Both stores.
"""

import datetime

import pytest

from bouncehelp import dsn, pipe, sent_campaign
from campaignhelp import Tenant, wait_until
from deliveryhelp import delivery_args
from harness import OPERATOR_KEY, Server, create_database, db_execute

BOUNCE_DOMAIN = "bounces.example.test"
PATH = "/api/v1/bounces/unmatched"


@pytest.fixture(scope="module")
def mc(request, store, sink, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"unmatched-{store}")
    url, drop = create_database(request, store, workdir)
    srv = Server(workdir, url, OPERATOR_KEY,
                 delivery_args(sink.url, "--bounce-domain", BOUNCE_DOMAIN))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        drop()


def unmatched(mc, **params):
    r = mc.get(PATH, headers=mc.op, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def test_unmatched_reports_are_the_operators(mc, sink):
    t = Tenant(mc)
    _, _, sent = sent_campaign(mc, sink, t, 1)
    (a,) = sent
    verp = sent[a][1]
    since = now_rfc3339()
    # Two reports without a valid reference (an altered one, none at all) and one with.
    bad = verp[:10] + ("a" if verp[10] != "a" else "b") + verp[11:]
    assert pipe(mc.database, dsn(bad, "first@example.org"), "--recipient", bad)[0] == 0
    assert pipe(mc.database, dsn("postmaster@x.example", "second@example.org"),
                "--recipient", "postmaster@x.example")[0] == 0
    assert pipe(mc.database, dsn(verp, a), "--recipient", verp)[0] == 0

    page = unmatched(mc, since=since)
    assert page["total"] == 2 and (page["limit"], page["offset"]) == (50, 0), page
    assert [x["email"] for x in page["data"]] == ["second@example.org", "first@example.org"]
    for x in page["data"]:
        assert (x["outcome"], x["message_id"], x["campaign_id"], x["source"]) == (
            "unreferenced", None, None, "pipe"), x
        assert "raw" not in x
    # Paginated like every list.
    one = unmatched(mc, since=since, limit=1, offset=1)
    assert (one["total"], [x["email"] for x in one["data"]]) == (2, ["first@example.org"])
    # One with its raw message.
    rid = page["data"][1]["id"]
    r = mc.get(f"{PATH}/{rid}", headers=mc.op)
    assert r.status_code == 200, r.text
    full = r.json()
    assert full["id"] == rid and full["raw_truncated"] is False
    assert "Final-Recipient: rfc822; first@example.org" in full["raw"]
    # The tenant's own record is not unmatched, and not listed here.
    mine = t.server.get(f"{t.base}/bounces", headers=t.h).json()["data"]
    assert len(mine) == 1 and mine[0]["outcome"] == "suppressed"
    assert mc.get(f"{PATH}/{mine[0]['id']}", headers=mc.op).status_code == 404
    assert mine[0]["id"] not in [x["id"] for x in unmatched(mc, limit=1000)["data"]]
    # And the unmatched ones are no tenant's.
    assert mc.get(f"{t.base}/bounces/{rid}", headers=t.h).status_code == 404


def test_tenant_keys_get_403_and_input_is_checked(mc):
    t = Tenant(mc)
    for path in (PATH, f"{PATH}/01a24fb0-1b2c-7d3e-8f40-51627384a5b6"):
        for h in (t.h, t.ro):
            r = mc.get(path, headers=h)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "forbidden"
        assert mc.get(path).status_code == 401
    r = mc.get(PATH, headers=mc.op, params={"since": "yesterday"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", r.text
    assert mc.get(PATH, headers=mc.op, params={"limit": "0"}).status_code == 422
    r = mc.get(f"{PATH}/not-an-id", headers=mc.op)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    assert mc.get(f"{PATH}/01a24fb0-1b2c-7d3e-8f40-51627384a5b6",
                  headers=mc.op).status_code == 404


def test_unmatched_reports_are_pruned_with_the_retention(mc):
    assert pipe(mc.database, dsn("postmaster@x.example", "old@example.org"),
                "--recipient", "postmaster@x.example")[0] == 0
    (old,) = [x for x in unmatched(mc, limit=1000)["data"] if x["email"] == "old@example.org"]
    # 31 days old: past the default bounce_retention_days (30).  The engine
    # sweeps at its start, then once a minute.
    if mc.database.startswith("sqlite:"):
        db_execute(mc.database, "UPDATE bounces SET received_at = received_at - %s WHERE id = %s",
                   (31 * 86400 * 1000000, old["id"]))
    else:
        db_execute(mc.database, "UPDATE bounces SET received_at = received_at - interval "
                   "'31 days' WHERE id = %s", (old["id"],))
    mc.stop()
    mc.start()
    wait_until(lambda: mc.get(f"{PATH}/{old['id']}", headers=mc.op).status_code == 404, 30,
               what="the old unmatched report pruned")
    assert all(x["email"] != "old@example.org" for x in unmatched(mc, limit=1000)["data"])


def test_reports_that_change_nothing_cannot_fill_the_disk(mc, sink):
    """An unreferenced report (anyone may write to postmaster) keeps 16 KB of
    its raw text, and a repeated report about the same message keeps none
    (the first has it): an attacker review stored 4 MB a second of them."""
    t = Tenant(mc)
    _, _, sent = sent_campaign(mc, sink, t, 1)
    (a,) = sent
    verp = sent[a][1]
    since = now_rfc3339()
    filler = ("x" * 900 + "\r\n") * 100  # 90 KB of body
    big = dsn("postmaster@x.example", "big@example.org") + filler.encode()
    assert pipe(mc.database, big, "--recipient", "postmaster@x.example")[0] == 0
    rec = unmatched(mc, since=since)["data"][0]
    full = mc.get(f"{PATH}/{rec['id']}", headers=mc.op).json()
    assert full["raw_truncated"] is True and 0 < len(full["raw"]) <= 16 * 1024, len(full["raw"])
    # The same hard bounce twice: the second is a duplicate, without its raw text.
    report = dsn(verp, a) + filler.encode()
    for _ in range(2):
        assert pipe(mc.database, report, "--recipient", verp)[0] == 0
    mine = t.server.get(f"{t.base}/bounces", headers=t.h).json()["data"]
    raws = {x["outcome"]: t.server.get(f"{t.base}/bounces/{x['id']}", headers=t.h).json()["raw"]
            for x in mine}
    assert set(raws) == {"suppressed", "duplicate"}, raws
    assert raws["duplicate"] is None and len(raws["suppressed"]) > 90000
