"""End to end with real mail software (issue 10's proof), on both stores: a
throwaway Postfix is mailcast's relay.  It accepts mail for a domain whose
users do not exist and bounces it later with a genuine DSN to the message's
VERP envelope sender, which it routes back to mailcast (through the SMTP
listener in one test, through a pipe to `mailcast bounce` in the other).
The addresses end up suppressed as hard bounces, and a second campaign to
the same list skips them; the real mailbox keeps getting mail.
"""

import os
import pathlib
import shutil
import tempfile

import pytest

from campaignhelp import Tenant, wait_until
from deliveryhelp import delivery_args, mail_domain, messages, wait_terminal
from harness import OPERATOR_KEY, Server, ServerError, create_database, free_port
from postfixhelp import Postfix
from smtpsink import BOUNCE_550, Sink

BOUNCE_DOMAIN = "bounces.example.test"
GOOD = ["alice@good.example.test", "bob@good.example.test"]
DEAD = ["ghost1@dead.example.test", "ghost2@dead.example.test", "someone@nxdomain.example.test"]


def run_campaign(t, lst):
    c = t.create(recipient_list_id=lst["id"], from_address=f"news@{mail_domain('from')}")
    t.do(c["id"], "send")
    assert wait_terminal(t, c["id"], timeout=60)["status"] == "completed"
    return c


def suppressed(t):
    r = t.server.get(f"{t.base}/unsubscribes", headers=t.h, params={"limit": 1000})
    return {u["email"]: u for u in r.json()["data"]}


@pytest.mark.parametrize("way", ["listener", "pipe"])
def test_genuine_dsns_suppress_and_the_next_campaign_skips(way, request, store, tmp_path):
    dbdir = pathlib.Path(tempfile.mkdtemp(prefix="mc-bounce-db-"))
    os.chmod(dbdir, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(dbdir, ignore_errors=True))
    url, drop = create_database(request, store, dbdir)
    request.addfinalizer(drop)
    refusing = Sink()
    refusing.default = BOUNCE_550
    refusing.start()
    request.addfinalizer(refusing.stop)
    # The listener's port is free when picked, but another process may bind
    # it before mailcast does: then both start again on another.
    for attempt in range(3):
        lport = free_port()
        pf = Postfix(GOOD, BOUNCE_DOMAIN, refusing.port,
                     listener_port=lport if way == "listener" else None,
                     pipe_database=url if way == "pipe" else None).start()
        args = delivery_args(pf.url, "--bounce-domain", BOUNCE_DOMAIN)
        if way == "listener":
            args += ["--bounce-listen", f"127.0.0.1:{lport}"]
        srv = Server(tmp_path / f"srv{attempt}", url, OPERATOR_KEY, args)
        try:
            srv.start()
            break
        except ServerError:
            pf.stop()
            if attempt == 2 or "cannot bind the address" not in srv.stderr():
                raise
    request.addfinalizer(pf.stop)
    request.addfinalizer(srv.stop)
    if way == "pipe" and store == "sqlite":
        # The pipe runs as the postgres user: the SQLite files must be its to write.
        for p in [dbdir, *dbdir.iterdir()]:
            shutil.chown(p, "postgres", "postgres")
    t = Tenant(srv)
    lst = t.make_list(0)
    t.import_emails(lst["id"], GOOD + DEAD)
    c = run_campaign(t, lst)
    rows = messages(srv, c["id"])
    assert {a: r["status"] for a, r in rows.items()} == {a: "sent" for a in GOOD + DEAD}
    # Postfix took them all; it delivers the good ones and bounces the dead ones back.
    wait_until(lambda: set(DEAD) <= set(suppressed(t)), 90,
               what="Postfix's DSNs to reach mailcast\n" + pf.log()[-3000:])
    sup = suppressed(t)
    for a in DEAD:
        assert (sup[a]["cause"], sup[a]["message_id"]) == ("hard_bounce", rows[a]["id"]), sup[a]
    assert not set(GOOD) & set(sup)
    recs = t.server.get(f"{t.base}/bounces", headers=t.h, params={"limit": 100}).json()["data"]
    assert {(r["email"], r["class"], r["kind"], r["outcome"]) for r in recs} == {
        (a, "hard", "dsn", "suppressed") for a in DEAD}, recs
    assert {r["source"] for r in recs} == {"smtp" if way == "listener" else "pipe"}
    assert all(r["reporting_mta"] == "relay.example.test" for r in recs)
    wait_until(lambda: all(pf.delivered(u.split("@")[0]) for u in GOOD), 30,
               what="the good mailboxes")
    # The next campaign to the same list skips the bounced addresses.
    c2 = run_campaign(t, lst)
    assert set(messages(srv, c2["id"])) == set(GOOD)
    assert t.stats(c["id"])["bounced_hard"] == len(DEAD)
