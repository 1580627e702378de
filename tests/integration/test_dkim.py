"""DKIM: a tenant's signing keys (/dkim-keys) and the signatures on its mail.

POST .../dkim-keys adds a key for a domain and selector, generated
(RSA-2048) or imported as PEM, and answers the DNS record to publish; the
private key never comes back, in any answer or log.  Every message whose
From domain has a key (campaign messages and test sends) is signed
rsa-sha256, relaxed/relaxed, over the exact bytes written, by the domain's
newest key; a message from a domain without a key goes unsigned, or, with
dkim_required = 1, fails.

Signatures are checked with dkimpy (python3-dkim) against a stub resolver
that answers each key's dns_record at its dns_name, so no DNS is used.  The
servers deliver to a dir: outbox, which names each message's file after its
id.  Every test runs on both stores (but the terminal test, which needs
neither).
"""

import base64
import email
import email.policy
import fcntl
import os
import re
import select
import subprocess
import termios
import time

import dkim
import dkim.util
import pytest
import requests

from campaignhelp import Tenant, db_query, missing_id, wait_until
from harness import BIN, OPERATOR_KEY, bearer, child_env, error_of, free_port, invalid_field

DKIM_FIELDS = {"id", "domain", "selector", "algorithm", "key_bits", "dns_name", "dns_type",
               "dns_record", "created_at"}
# Signed on every campaign message (and Reply-To when the campaign has one).
SIGNED = ["from", "to", "subject", "date", "message-id", "mime-version", "content-type",
          "list-unsubscribe", "list-unsubscribe-post", "x-mailcast-ref"]
# A long public_url and a mailto make a long, folded List-Unsubscribe.
PUBLIC = "https://mail.example.test/" + "/".join(f"unsubscribe-segment-{i}" for i in range(8))
MAILTO = "mailto:unsubscribe-requests@lists.example.net"

IDN_DOMAIN = "Bücher.Example.COM"
IDN_ASCII = "xn--bcher-kva.example.com"


# ---- keys made with the openssl command line ----


def openssl(*args, cwd):
    try:
        res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=120)
    except FileNotFoundError:
        pytest.fail("the openssl command is missing (Debian package openssl)", pytrace=False)
    assert res.returncode == 0, (args, res.stderr.decode(errors="replace"))
    return res.stdout


@pytest.fixture(scope="module")
def pems(tmp_path_factory):
    """PEM texts by name, made once for the module, and their public keys
    (base64 DER SubjectPublicKeyInfo, what p= must carry) under "pub:NAME"."""
    d = tmp_path_factory.mktemp("pems")
    gen = {
        "rsa2048": ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "rsa1024": ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        "rsa1023": ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1023"],
        "rsa512": ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"],
        "ec": ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "ed25519": ["genpkey", "-algorithm", "ED25519"],
        "rsapss": ["genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048"],
    }
    out = {}
    for name, args in gen.items():
        openssl(*args, "-out", f"{name}.pem", cwd=d)
    # PKCS#1 ("BEGIN RSA PRIVATE KEY") of another 2048-bit key.
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", "tmp.pem", cwd=d)
    openssl("rsa", "-in", "tmp.pem", "-traditional", "-out", "pkcs1.pem", cwd=d)
    # The public half alone, and an encrypted private key.
    openssl("pkey", "-in", "rsa2048.pem", "-pubout", "-out", "public.pem", cwd=d)
    openssl("pkey", "-in", "rsa2048.pem", "-aes256", "-passout", "pass:secret",
            "-out", "encrypted.pem", cwd=d)
    for f in sorted(d.glob("*.pem")):
        out[f.stem] = f.read_text()
    assert out["pkcs1"].startswith("-----BEGIN RSA PRIVATE KEY-----"), out["pkcs1"][:40]
    assert out["rsa2048"].startswith("-----BEGIN PRIVATE KEY-----")
    assert "ENCRYPTED" in out["encrypted"]
    for name in ("rsa2048", "rsa1024", "pkcs1"):
        der = openssl("pkey", "-in", f"{name}.pem", "-pubout", "-outform", "DER", cwd=d)
        out["pub:" + name] = base64.b64encode(der).decode()
    return out


def pem_secrets(pem):
    """Pieces of a PEM private key that must never show: its armour and
    every full base64 line of its body."""
    lines = [x for x in pem.splitlines() if x and not x.startswith("-----")]
    return ["PRIVATE KEY"] + [x for x in lines if len(x) >= 40]


# ---- servers, keys, DNS ----


def dkim_server(server_factory, tmp_path, *extra, outbox="outbox"):
    """A delivering server of the test's own, writing to a dir: outbox."""
    box = tmp_path / outbox
    srv = server_factory(args=["--relay", f"dir:{box}", "--public-url", PUBLIC,
                               "--list-unsubscribe-mailto", MAILTO,
                               "--engine-poll-ms", "50", "--idle-poll-max-ms", "400", "--delivery-poll-ms", "50", *extra])
    srv.outbox = box
    return srv


def keys_path(t, key_id=None):
    p = f"{t.base}/dkim-keys"
    return p if key_id is None else f"{p}/{key_id}"


def post_key(t, headers=None, **body):
    return t.server.post(keys_path(t), json=body, headers=headers or t.h)


def add_key(t, domain, selector, private_key=None):
    body = {"domain": domain, "selector": selector}
    if private_key is not None:
        body["private_key"] = private_key
    r = post_key(t, **body)
    assert r.status_code == 201, r.text
    return r.json()


def list_keys(t, headers=None):
    """Every key of the tenant through all pages, and the raw answers."""
    out, texts, offset = [], [], 0
    while True:
        r = t.server.get(keys_path(t), headers=headers or t.h,
                         params={"limit": 2, "offset": offset})
        assert r.status_code == 200, r.text
        texts.append(r.text)
        body = r.json()
        out += body["data"]
        offset += len(body["data"])
        if not body["data"] or offset >= body["total"]:
            assert len(out) == body["total"]
            return out, texts


class Dns:
    """A stub resolver for dkimpy: TXT records by name."""

    def __init__(self, *keys):
        self.records = {}
        self.asked = []
        for k in keys:
            self.add(k)

    def add(self, key):
        self.records[key["dns_name"].lower() + "."] = key["dns_record"].encode()

    def __call__(self, name, timeout=5):
        n = (name.decode() if isinstance(name, bytes) else name).lower()
        if not n.endswith("."):
            n += "."
        self.asked.append(n)
        return self.records.get(n)


def check_record(key):
    """The key's answer: its DNS name and a TXT value a verifier accepts."""
    assert set(key) == DKIM_FIELDS, key
    assert key["algorithm"] == "rsa-sha256" and key["dns_type"] == "TXT", key
    assert key["dns_name"] == f"{key['selector']}._domainkey.{key['domain']}", key
    rec = key["dns_record"]
    assert re.fullmatch(r"v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+={0,2}", rec), rec
    tags = dkim.util.parse_tag_value(rec.encode())
    assert tags[b"v"] == b"DKIM1" and tags[b"k"] == b"rsa", tags
    # dkimpy's own reading of a DNS answer: a usable RSA key of key_bits.
    pk, bits, ktag, _ = dkim.evaluate_pk(key["dns_name"].encode(), rec.encode())
    assert bits == key["key_bits"] and ktag == b"rsa", (bits, ktag, key)
    assert pk["publicExponent"] == 65537, pk
    return tags[b"p"].decode()


# ---- messages ----


def send_and_wait(t, cid, timeout=60):
    t.do(cid, "send")
    return t.wait_for(cid, lambda c: c["status"] in ("completed", "failed"), timeout,
                      "the campaign to finish")


def delivered(server, cid):
    """{to_address: raw bytes} of the campaign's sent messages in the outbox."""
    out = {}
    for mid, to in db_query(server.database,
                            "SELECT id, to_address FROM scheduled_messages "
                            "WHERE campaign_id = %s AND status = 'sent'", (cid,)):
        f = server.outbox / f"{mid}.eml"
        assert f.exists(), f"the sent message {mid} is not in the outbox"
        out[to] = f.read_bytes()
    return out


def outbox_files(server):
    return sorted(server.outbox.glob("*.eml")) if server.outbox.exists() else []


def split(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, "no end of header"
    return head.split(b"\r\n"), body


def header_fields(raw):
    """[(name, unfolded value)] of the message's header, in order."""
    lines, _ = split(raw)
    fields = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            name, value = fields[-1]
            fields[-1] = (name, value + line)
        else:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return [(n.decode(), v) for n, v in fields]


def signature(raw):
    """The DKIM-Signature's tags (whitespace removed from h, b, bh); it must
    be the first header field, and the only signature."""
    fields = header_fields(raw)
    assert fields[0][0].lower() == "dkim-signature", fields[0]
    assert sum(1 for n, _ in fields if n.lower() == "dkim-signature") == 1
    tags = dkim.util.parse_tag_value(fields[0][1])
    return {k.decode(): re.sub(rb"\s+", b"", v).decode() if k in (b"h", b"b", b"bh")
            else v.decode() for k, v in tags.items()}


def is_signed(raw):
    return any(n.lower() == "dkim-signature" for n, _ in header_fields(raw))


def verifies(raw, dns):
    return dkim.verify(raw, dnsfunc=dns) is True


def alter_header(raw, name):
    """raw with one visible character added to the value of its one `name` field."""
    lines, body = split(raw)
    hits = [i for i, x in enumerate(lines) if x.lower().startswith(name.encode() + b":")]
    assert len(hits) == 1, (name, hits)
    i = hits[0]
    colon = lines[i].index(b":")
    lines[i] = lines[i][:colon + 1] + b" X" + lines[i][colon + 1:].lstrip(b" ")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def alter_body(raw, where):
    """raw with one letter or digit of its body, near fraction `where`, changed."""
    lines, body = split(raw)
    i = int(len(body) * where)
    while not chr(body[i]).isalnum():
        i += 1
    new = b"b" if body[i:i + 1] == b"a" else b"a"
    body = body[:i] + new + body[i + 1:]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


PEOPLE = [
    ("ann@example.net", "Ann Lee"),
    ("zoe@example.net", "Zoë Straße"),
    ("yamada@example.jp", "山田 太郎"),
    ("unal@example.com.tr", "Ünal Çelik"),
    ("sean@example.ie", "O'Brien, Seán"),
    ("jürgen@example.de", "Jürgen Groß"),
    ("ana@bücher.example.com", "Ana Núñez"),
    ("Mixed.Case@Example.ORG", "Mixed Case"),
    ("quote@example.org", "\"Quoted\" Name"),
    ("long@example.org", "A Very Long Display Name " * 4),
] + [(f"user{i:02d}@d{i % 3}.example.com", f"User {i} ✓") for i in range(10)]

SUBJECT = "Grüße, {{first_name | default:\"Freund\"}} — Neuigkeiten für Sie ✓ " + "·" * 40
TEXT = ("Hallo {{name}},\n"
        "dies ist eine Nachricht mit Umlauten: äöü ÄÖÜ ß.\n"
        ".a line starting with a dot\n"
        "From the start of a line\n"
        "trailing blanks   \n"
        + "a long line " * 20 + "\n"
        "Abmelden: {{unsubscribe_url}}\n")
HTML = ("<p>Hallo {{name}} — <b>Grüße</b></p>\n<p>" + "lorem ipsum " * 30 + "</p>\n"
        "<a href=\"{{{unsubscribe_url}}}\">Abmelden</a>\n")


def people_campaign(t, from_address, people=PEOPLE, **fields):
    lst = t.make_list()
    for addr, name in people:
        t.add(lst["id"], addr, name=name)
    c = t.create(recipient_list_id=lst["id"], from_address=from_address,
                 subject=SUBJECT, text_body=TEXT, html_body=HTML, **fields)
    return lst, c


# ---- the key API ----


def test_generated_key_answers_a_valid_dns_record(server_factory, tmp_path):
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    r = post_key(t, domain=IDN_DOMAIN, selector="mc2026")
    assert r.status_code == 201, r.text
    k = r.json()
    assert k["domain"] == IDN_ASCII, "normalised: lowercase, ASCII form"
    assert k["selector"] == "mc2026"
    assert k["key_bits"] == 2048
    assert k["dns_name"] == f"mc2026._domainkey.{IDN_ASCII}"
    check_record(k)
    # null private_key generates too; every generated key is a new one.
    k2 = add_key(t, "example.org", "gen-2")
    r3 = post_key(t, domain="example.org", selector="gen3", private_key=None)
    assert r3.status_code == 201, r3.text
    k3 = r3.json()
    for x in (k2, k3):
        check_record(x)
        assert x["key_bits"] == 2048
    assert len({k["dns_record"], k2["dns_record"], k3["dns_record"]}) == 3

    # The list answers the same keys, newest first, paginated.
    keys, _ = list_keys(t)
    assert [x["id"] for x in keys] == [k3["id"], k2["id"], k["id"]]
    assert keys[2] == k
    r = srv.get(keys_path(t), headers=t.h, params={"limit": 1, "offset": 1})
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 1, 1)
    assert [x["id"] for x in page["data"]] == [k2["id"]]
    invalid_field(srv.get(keys_path(t), headers=t.h, params={"limit": 0}), "limit")


@pytest.mark.parametrize("name", ["rsa2048", "pkcs1", "rsa1024"])
def test_imported_pem_key(server_factory, tmp_path, pems, name):
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    k = add_key(t, "Imported.Example.org", f"imp-{name}", pems[name])
    assert k["domain"] == "imported.example.org"
    assert k["key_bits"] == (1024 if name == "rsa1024" else 2048)
    # p= is exactly the public half of the key given.
    assert check_record(k) == pems["pub:" + name]


def test_private_key_never_shown(server_factory, tmp_path, pems):
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    texts = []

    def keep(r):
        texts.append(r.text)
        texts.extend(f"{h}: {v}" for h, v in r.headers.items())
        return r

    imported = pems["rsa2048"]
    r = keep(post_key(t, domain="example.org", selector="imp", private_key=imported))
    assert r.status_code == 201, r.text
    assert "private_key" not in r.json()
    keep(post_key(t, domain="example.org", selector="imp", private_key=imported))  # 409
    keep(post_key(t, domain="example.org", selector="imp2",
                  private_key=imported[:len(imported) // 2]))  # 422
    keep(post_key(t, domain="bad", selector="x", private_key=imported))  # 422
    r = keep(post_key(t, domain="example.org", selector="gen"))
    assert r.status_code == 201 and "private_key" not in r.json(), r.text
    keys, pages = list_keys(t)
    texts += pages
    assert all(set(k) == DKIM_FIELDS for k in keys), keys
    keep(srv.get(keys_path(t), headers=srv.op))
    keep(srv.delete(keys_path(t, keys[0]["id"]), headers=t.h))
    keep(srv.delete(keys_path(t, keys[0]["id"]), headers=t.h))  # 404

    logs = srv.stderr() + srv.stdout()
    assert "event=dkim_key_created" in logs, "the creation is logged (without the key)"
    everything = "\n".join(texts) + "\n" + logs
    for piece in pem_secrets(imported):
        assert piece not in everything, f"a piece of the private key was shown: {piece!r}"
    assert "PRIVATE" not in everything and "BEGIN" not in everything

    # Stored sealed: the database holds no PEM, neither imported nor generated.
    rows = db_query(srv.database, "SELECT private_key_enc FROM dkim_keys")
    for (enc,) in rows:
        assert "BEGIN" not in enc and "PRIVATE" not in enc
        for piece in pem_secrets(imported)[1:]:
            assert piece not in enc
    assert len(rows) == 1


def test_duplicate_selector_is_409(server_factory, tmp_path):
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    first = add_key(t, IDN_DOMAIN, "s1")
    # The same domain however spelt, the same selector: 409, nothing added.
    for domain in (IDN_DOMAIN, "bücher.example.com", IDN_ASCII, IDN_ASCII.upper()):
        r = post_key(t, domain=domain, selector="s1")
        err = error_of(r, 409, "conflict")
        assert "s1" in err["message"], err
    keys, _ = list_keys(t)
    assert [k["id"] for k in keys] == [first["id"]]
    # Another selector of the domain, the selector for another domain, and the
    # same pair in another tenant are fine.
    add_key(t, IDN_DOMAIN, "s2")
    add_key(t, "example.org", "s1")
    other = Tenant(srv)
    add_key(other, IDN_DOMAIN, "s1")
    assert len(list_keys(t)[0]) == 3 and len(list_keys(other)[0]) == 1


def test_selector_differing_only_in_case_is_409(server_factory, tmp_path):
    """DNS names are case-insensitive: "MC1._domainkey.D" is the TXT record of
    "mc1._domainkey.D", so a second key there could never be published next
    to the first.  It must be refused like any other duplicate."""
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    add_key(t, "example.org", "mc1")
    r = post_key(t, domain="example.org", selector="MC1")
    assert r.status_code == 409, (
        f"a second key for the DNS name mc1._domainkey.example.org was accepted: "
        f"{r.status_code} {r.text[:200]}")


def test_invalid_keys_are_422(server_factory, tmp_path, pems):
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    bad_domains = ["bad", "localhost", "-a.example.com", "a-.example.com", "exa mple.com",
                   " example.com", "example.com.", "a..example.com", "example.123",
                   "[127.0.0.1]", "192.168.0.1", "user@example.com", "ex_ample.com",
                   "a\nb.example.com", "d" * 64 + ".com", ("d" * 63 + ".") * 4 + "com", "",
                   5, None, ["example.com"]]
    for d in bad_domains:
        invalid_field(post_key(t, domain=d, selector="s"), "domain")
    invalid_field(post_key(t, selector="s"), "domain")
    bad_selectors = ["", "-s", "s-", "a.b", "a_b", "ä", "s s", "s\n", "a" * 64, 7, None,
                     {"s": 1}]
    for s in bad_selectors:
        invalid_field(post_key(t, domain="example.com", selector=s), "selector")
    invalid_field(post_key(t, domain="example.com"), "selector")
    # Not a usable RSA private key: other types, too short, the public half,
    # broken or no PEM at all, or too long.
    rsa = pems["rsa2048"]
    cut = rsa.splitlines()
    bad_pems = [pems["ec"], pems["ed25519"], pems["rsapss"], pems["rsa512"], pems["rsa1023"],
                pems["public"], "", "garbage",
                "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
                "\n".join(cut[:len(cut) // 2] + cut[-1:]) + "\n",
                base64.b64encode(b"\x00" * 600).decode(), "A" * 16385, 12, {"pem": rsa},
                [rsa]]
    for i, pem in enumerate(bad_pems):
        err = invalid_field(post_key(t, domain="example.com", selector=f"k{i}",
                                     private_key=pem), "private_key")
        assert "BEGIN" not in err["message"]
    # Missing or non-object bodies are not 422.
    error_of(srv.post(keys_path(t), headers=t.h), 400, "bad_request")
    json_type = {**t.h, "Content-Type": "application/json"}
    error_of(srv.post(keys_path(t), data=b"[]", headers=json_type), 400, "malformed_json")
    error_of(srv.post(keys_path(t), data=b"domain=x", headers={
        **t.h, "Content-Type": "application/x-www-form-urlencoded"}), 415, "unsupported_media_type")
    assert list_keys(t)[0] == [], "nothing was stored"


def damaged_modulus(pkcs1_pem):
    """A PKCS#1 RSA key with one byte of its modulus changed: it still parses
    as a 2048-bit RSA key, but its public half (what dns_record would
    publish) no longer matches the private exponent and primes."""
    body = "".join(x for x in pkcs1_pem.splitlines() if not x.startswith("-----"))
    der = bytearray(base64.b64decode(body))
    # SEQUENCE (30 82 LL LL), version (02 01 00), modulus (02 82 01 01 00 ...).
    assert der[:2] == b"\x30\x82" and der[4:7] == b"\x02\x01\x00", der[:12].hex()
    assert der[7:12] == b"\x02\x82\x01\x01\x00", der[:12].hex()
    der[12 + 128] ^= 0x5A
    b64 = base64.b64encode(bytes(der)).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines)
            + "\n-----END RSA PRIVATE KEY-----\n")


def test_damaged_rsa_key_is_422(server_factory, tmp_path, pems):
    """A key whose halves do not match (`openssl pkey -check` says "Key is
    invalid") could only ever make signatures that fail against the record
    it publishes; it must be refused when imported."""
    bad = damaged_modulus(pems["pkcs1"])
    d = tmp_path / "damaged"
    d.mkdir()
    (d / "bad.pem").write_text(bad)
    res = subprocess.run(["openssl", "pkey", "-in", "bad.pem", "-check", "-noout"], cwd=d,
                         capture_output=True, text=True)
    assert res.returncode != 0, "openssl finds the damaged key valid; the test is broken"
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    r = post_key(t, domain="damaged.example", selector="bad", private_key=bad)
    if r.status_code == 201:
        # Show what it leads to: every message is signed, and none verifies.
        k = r.json()
        _, c = people_campaign(t, "news@damaged.example", people=PEOPLE[:2])
        send_and_wait(t, c["id"])
        raws = list(delivered(srv, c["id"]).values())
        results = [verifies(raw, Dns(k)) for raw in raws]
        pytest.fail(f"a damaged RSA key was accepted (201); the signatures it makes "
                    f"verify: {results}", pytrace=False)
    invalid_field(r, "private_key")


def test_delete(server_factory, tmp_path):
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    a = add_key(t, "example.org", "a")
    b = add_key(t, "example.org", "b")
    r = srv.delete(keys_path(t, a["id"].upper()), headers=t.h)
    assert r.status_code == 204 and r.content == b"", r.text
    assert [k["id"] for k in list_keys(t)[0]] == [b["id"]]
    err = error_of(srv.delete(keys_path(t, a["id"]), headers=t.h), 404, "not_found")
    assert err["message"] == "DKIM key not found", err
    for bad in (missing_id(), "not-a-uuid"):
        error_of(srv.delete(keys_path(t, bad), headers=t.h), 404, "not_found")
    # The same selector can be used again once deleted.
    add_key(t, "example.org", "a")
    r = srv.get(keys_path(t, b["id"]), headers=t.h)
    assert r.status_code == 405 and r.headers.get("Allow") == "DELETE", r.text


def test_tenant_isolation_and_scopes(server_factory, tmp_path):
    srv = dkim_server(server_factory, tmp_path)
    t, other = Tenant(srv), Tenant(srv)
    k = add_key(t, "example.org", "iso")
    ko = add_key(other, "example.net", "iso")
    # Another tenant's key: its path answers 404 to every method.
    err = error_of(srv.get(keys_path(t), headers=other.h), 404, "not_found")
    assert err["message"] == "tenant not found"
    error_of(srv.post(keys_path(t), json={"domain": "evil.example", "selector": "x"},
                      headers=other.h), 404, "not_found")
    error_of(srv.delete(keys_path(t, k["id"]), headers=other.h), 404, "not_found")
    # Its own path with the other tenant's key id: 404, for the operator too.
    error_of(srv.delete(keys_path(other, k["id"]), headers=other.h), 404, "not_found")
    error_of(srv.delete(keys_path(other, k["id"]), headers=srv.op), 404, "not_found")
    # A read-only key reads, but neither adds nor deletes.
    keys, _ = list_keys(t, headers=t.ro)
    assert [x["id"] for x in keys] == [k["id"]]
    err = error_of(post_key(t, headers=t.ro, domain="example.org", selector="ro"), 403,
                   "insufficient_scope")
    error_of(srv.delete(keys_path(t, k["id"]), headers=t.ro), 403, "insufficient_scope")
    # No key at all.
    error_of(srv.get(keys_path(t)), 401, "unauthorized")
    assert [x["id"] for x in list_keys(t)[0]] == [k["id"]]
    assert [x["id"] for x in list_keys(other)[0]] == [ko["id"]]
    # The operator may do it all.
    r = srv.post(keys_path(t), json={"domain": "example.org", "selector": "op"}, headers=srv.op)
    assert r.status_code == 201, r.text
    assert srv.delete(keys_path(t, r.json()["id"]), headers=srv.op).status_code == 204


def test_encrypted_pem_is_refused_without_asking_a_terminal(tmp_path, pems):
    """An encrypted PEM must be refused (422) at once.  A server started from a
    shell has a controlling terminal: reading the key must never ask it for a
    pass phrase (OpenSSL's default when no password callback is given), which
    would hang the request and the shutdown and let whoever sits at the
    console answer.  The server here gets a pseudo-terminal as its
    controlling terminal, as under a shell."""
    master, slave = os.openpty()
    port = free_port()
    log = tmp_path / "tty-server.log"

    def take_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--database",
             f"sqlite:{tmp_path / 'tty.db'}", "--relay", f"dir:{tmp_path / 'outbox'}"],
            stdin=slave, stdout=out, stderr=out, env=child_env(OPERATOR_KEY), cwd=tmp_path,
            start_new_session=True, preexec_fn=take_terminal)
    os.close(slave)
    base = f"http://127.0.0.1:{port}"
    op = bearer(OPERATOR_KEY)
    screen = b""
    try:
        # Deadlines for a loaded machine: a server start can take seconds there.
        wait_until(lambda: proc.poll() is not None or _healthy(base), 60, what="the server")
        assert proc.poll() is None, log.read_text()
        r = requests.post(f"{base}/api/v1/tenants", json={"name": "tty"}, headers=op, timeout=60)
        assert r.status_code == 201, r.text
        path = f"{base}/api/v1/tenants/{r.json()['id']}/dkim-keys"
        started = time.monotonic()
        try:
            r = requests.post(path, json={"domain": "example.org", "selector": "enc",
                                          "private_key": pems["encrypted"]},
                              headers=op, timeout=30)
        except requests.Timeout:
            r = None
        while select.select([master], [], [], 0.2)[0]:
            try:
                screen += os.read(master, 4096)
            except OSError:
                break
        if r is None:
            pytest.fail(f"POST of an encrypted PEM got no answer in 30 s; the server's "
                        f"terminal shows {screen.decode(errors='replace')!r}", pytrace=False)
        invalid_field(r, "private_key")
        # A prompt would wait for ever; 30 s leaves room for a loaded machine.
        assert time.monotonic() - started < 30
        assert b"pass phrase" not in screen, screen
    finally:
        os.close(master)  # a blocked read of the terminal ends here
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _healthy(base):
    try:
        return requests.get(base + "/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


# ---- signatures ----


@pytest.mark.slow(10)
def test_campaign_messages_verify(server_factory, tmp_path):
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    key = add_key(t, IDN_DOMAIN, "mc2026")
    other = add_key(t, "other.example.org", "mc2026")  # never used here
    dns = Dns(key, other)
    lst, c = people_campaign(t, "News@bücher.example.com", from_name="Bücher Straße & Söhne",
                             reply_to="Antwort@bücher.example.com")
    assert c["from_address"] == f"News@{IDN_ASCII}"
    done = send_and_wait(t, c["id"])
    assert done["status"] == "completed" and done["sent_count"] == len(PEOPLE), done
    msgs = delivered(srv, c["id"])
    assert len(msgs) == len(PEOPLE)

    failures = []
    for to, raw in msgs.items():
        sig = signature(raw)
        assert sig["v"] == "1" and sig["a"] == "rsa-sha256", sig
        assert sig["c"] == "relaxed/relaxed", sig
        assert (sig["d"], sig["s"]) == (IDN_ASCII, "mc2026"), sig
        assert "l" not in sig, "the body hash covers the whole body"
        h = [x.lower() for x in sig["h"].split(":")]
        assert set(SIGNED + ["reply-to"]) <= set(h), h
        # Every signed header is oversigned (RFC 6376 8.15): listed once more than it occurs.
        assert h.count("from") == 2, h
        for name in ("subject", "to", "list-unsubscribe", "list-unsubscribe-post", "date",
                     "message-id"):
            assert h.count(name) == 2, (name, h)
        if not verifies(raw, dns):
            failures.append(to)
    assert failures == [], f"{len(failures)}/{len(msgs)} messages do not verify: {failures}"
    assert dns.asked and set(dns.asked) == {f"mc2026._domainkey.{IDN_ASCII}."}

    # The messages are what the campaign asked for (so the test above checked
    # real content): non-ASCII subject and names, a long folded List-Unsubscribe.
    raw = msgs["zoe@example.net"]
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m["Subject"].startswith("Grüße, Zoë — Neuigkeiten"), m["Subject"]
    assert "Zoë Straße" in str(m["To"])
    lu = [v for n, v in header_fields(raw) if n.lower() == "list-unsubscribe"][0]
    assert len(lu) > 300 and PUBLIC.encode() in re.sub(rb"\r\n[ \t]", b"", lu), lu
    assert MAILTO.encode() in lu

    # Any change to a signed header, or to one byte of the body, breaks it.
    for to in ("zoe@example.net", "jürgen@example.de", "user00@d0.example.com"):
        raw = msgs[to]
        assert verifies(raw, dns)
        for name in SIGNED + ["reply-to"]:
            assert not verifies(alter_header(raw, name), dns), f"{name} of {to} is not covered"
        for where in (0.1, 0.5, 0.95):
            assert not verifies(alter_body(raw, where), dns), f"a body byte of {to}"
        # A second From, Subject or List-Unsubscribe added on the way (shown to the
        # reader, or clicked) breaks it.
        lines, body = split(raw)
        for extra in (b"From: CEO <ceo@evil.example>", b"Subject: Urgent: verify your account",
                      b"List-Unsubscribe: <https://evil.example/u>"):
            forged = b"\r\n".join(lines[:1] + [extra] + lines[1:])
            assert not verifies(forged + b"\r\n\r\n" + body, dns), (extra, to)
        # The signature itself, and the key published for the selector, matter.
        assert not verifies(alter_header(raw, "dkim-signature"), dns)
        assert not verifies(raw, Dns(dict(key, dns_record=other["dns_record"])))


def test_imported_key_signs(server_factory, tmp_path, pems):
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    key = add_key(t, "Example.ORG", "legacy", pems["pkcs1"])
    people = [("a@example.com", "A"), ("b@example.com", "Bé")]
    _, c = people_campaign(t, "news@EXAMPLE.org", people=people)
    done = send_and_wait(t, c["id"])
    assert done["sent_count"] == 2, done
    msgs = delivered(srv, c["id"])
    assert len(msgs) == 2
    for raw in msgs.values():
        sig = signature(raw)
        assert (sig["d"], sig["s"]) == ("example.org", "legacy"), sig
        assert verifies(raw, Dns(key))


def test_domain_without_key_sends_unsigned(server_factory, tmp_path):
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    add_key(t, "example.org", "s1")
    # Only an exact domain match signs: not a subdomain, not another tenant's key.
    other = Tenant(srv)
    add_key(other, "unsigned.example", "s1")
    for frm in ("news@unsigned.example", "news@sub.example.org"):
        _, c = people_campaign(t, frm, people=PEOPLE[:3])
        done = send_and_wait(t, c["id"])
        assert done["status"] == "completed" and done["sent_count"] == 3, done
        msgs = delivered(srv, c["id"])
        assert len(msgs) == 3
        for raw in msgs.values():
            assert not is_signed(raw), raw[:300]
            names = {n.lower() for n, _ in header_fields(raw)}
            assert {"from", "to", "subject", "list-unsubscribe"} <= names, names


def test_dkim_required_fails_unsigned_messages(server_factory, tmp_path):
    srv = dkim_server(server_factory, tmp_path, "--dkim-required", "1")
    t = Tenant(srv)
    key = add_key(t, "signed.example", "req")
    _, c = people_campaign(t, "news@unsigned.example", people=PEOPLE[:5])
    done = send_and_wait(t, c["id"])
    assert done["status"] == "failed", done
    assert (done["sent_count"], done["failed_count"]) == (0, 5), done
    st = t.stats(c["id"])
    assert (st["sent"], st["failed"], st["pending_count"], st["sending_count"]) == (0, 5, 0, 0), st
    rows = db_query(srv.database, "SELECT status, last_error FROM scheduled_messages "
                                  "WHERE campaign_id = %s", (c["id"],))
    assert len(rows) == 5
    for status, err in rows:
        assert status == "failed" and "DKIM" in (err or ""), (status, err)
    assert outbox_files(srv) == [], "nothing unsigned is written"
    # A test send of it is refused, and writes nothing either.
    r = t.action(c["id"], "test", {"to": ["probe@example.com"]})
    err = invalid_field(r, "to")
    assert "DKIM" in err["message"], err
    assert outbox_files(srv) == []

    # A domain with a key still sends, signed.
    _, c2 = people_campaign(t, "news@signed.example", people=PEOPLE[:5])
    done = send_and_wait(t, c2["id"])
    assert done["status"] == "completed" and done["sent_count"] == 5, done
    msgs = delivered(srv, c2["id"])
    assert len(msgs) == 5 and all(verifies(raw, Dns(key)) for raw in msgs.values())
    files = outbox_files(srv)
    assert len(files) == 5 and all(is_signed(f.read_bytes()) for f in files)


def test_newest_key_signs_and_deleted_keys_stop(server_factory, tmp_path):
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    old = add_key(t, "example.org", "old")
    new = add_key(t, "example.org", "new")
    dns = Dns(old, new)

    def campaign_selectors():
        _, c = people_campaign(t, "news@example.org", people=PEOPLE[:4])
        done = send_and_wait(t, c["id"])
        assert done["sent_count"] == 4, done
        msgs = delivered(srv, c["id"])
        assert len(msgs) == 4
        sels = set()
        for raw in msgs.values():
            if is_signed(raw):
                assert verifies(raw, dns)
                sels.add(signature(raw)["s"])
            else:
                sels.add(None)
        return sels

    assert campaign_selectors() == {"new"}, "the newest key signs"
    assert srv.delete(keys_path(t, new["id"]), headers=t.h).status_code == 204
    assert campaign_selectors() == {"old"}
    assert srv.delete(keys_path(t, old["id"]), headers=t.h).status_code == 204
    assert campaign_selectors() == {None}, "no key left: unsigned"


def test_test_sends_are_signed(server_factory, tmp_path):
    srv = dkim_server(server_factory, tmp_path)
    t = Tenant(srv)
    key = add_key(t, IDN_DOMAIN, "test1")
    _, c = people_campaign(t, f"news@{IDN_DOMAIN}", people=PEOPLE[:2], reply_to="r@example.org")

    def test_send(to):
        r = t.action(c["id"], "test", {"to": to, "name": "Zoë Tëst",
                                       "attributes": {"plan": "pro"}})
        assert r.status_code == 200, r.text
        files = []
        for res in r.json()["results"]:
            assert res["status"] == "sent", res
            m = re.search(r"(test-[0-9a-f]{16}\.eml)", res["reply"])
            assert m, res
            files.append((srv.outbox / m.group(1)).read_bytes())
        assert len(files) == len(to)
        return files

    for raw in test_send(["probe@example.com", "prüfer@example.de", "x@example.net"]):
        sig = signature(raw)
        assert (sig["d"], sig["s"], sig["c"]) == (IDN_ASCII, "test1", "relaxed/relaxed"), sig
        assert set(SIGNED + ["reply-to"]) <= {x.lower() for x in sig["h"].split(":")}
        assert verifies(raw, Dns(key))
        assert not verifies(alter_header(raw, "subject"), Dns(key))
    # Test sends use the key of the moment: once deleted, they go unsigned.
    assert srv.delete(keys_path(t, key["id"]), headers=t.h).status_code == 204
    for raw in test_send(["probe@example.com"]):
        assert not is_signed(raw)
