"""A throwaway Postfix instance as mailcast's relay (shared/NOTES.md), for
tests that need genuine delivery status notifications: its own
config_directory, queue and log in a temp dir, listening on loopback only,
never touching the machine's own Postfix.

- good.example.test: real mailboxes (Maildirs) for the addresses given;
  unknown users there are refused at RCPT.
- dead.example.test: accepted and relayed to a next hop (an aiosmtpd sink)
  that refuses every recipient with 550 5.1.1, so Postfix writes a DSN to
  the envelope sender.
- nxdomain.example.test: accepted; its name does not resolve, so Postfix
  bounces it too.
- the bounce domain: delivered to mailcast's listener, or piped to
  `mailcast bounce`, which Postfix runs as the postgres user (a pipe never
  runs as root; that user reaches the test cluster's socket, and a SQLite
  database's directory is given to it).
"""

import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from harness import BIN, free_port

POSTFIX = "/usr/sbin/postfix"
POSTMAP = "/usr/sbin/postmap"


class Postfix:
    def __init__(self, users, bounce_domain, refusing_port, listener_port=None,
                 pipe_database=None):
        # Postfix's daemons run as the postfix user: the directory must be
        # reachable by it (pytest's own temp dirs are root's alone).
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="mc-postfix-"))
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.users = users
        self.bounce_domain = bounce_domain
        self.refusing_port = refusing_port
        self.listener_port = listener_port
        self.pipe_database = pipe_database

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}?starttls=off"

    def _write(self):
        d = self.dir
        for sub in ("conf", "queue", "data", "mail"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(d / "data", "postfix", "postfix")
        shutil.chown(d / "mail", "postfix", "postfix")
        conf = d / "conf"
        lines = []
        for line in open("/etc/postfix/master.cf"):
            cols = line.split()
            if line[:1] not in ("#", " ", "\t", "\n") and len(cols) >= 8:
                cols[4] = "n"  # no chroot
                if cols[0] == "smtp" and cols[1] == "inet":
                    cols[0] = f"127.0.0.1:{self.port}"
                line = "  ".join(cols) + "\n"
            lines.append(line)
        if self.pipe_database:
            lines.append(
                "mailcast  unix  -  n  n  -  -  pipe\n"
                f"  flags=Rq user=postgres argv={BIN} bounce --database {self.pipe_database} "
                "--recipient ${recipient}\n")
        (conf / "master.cf").write_text("".join(lines))
        bounce_to = ("mailcast:" if self.pipe_database
                     else f"smtp:[127.0.0.1]:{self.listener_port}")
        (conf / "transport").write_text(
            f"dead.example.test  smtp:[127.0.0.1]:{self.refusing_port}\n"
            f"{self.bounce_domain}  {bounce_to}\n")
        (conf / "vmailbox").write_text("".join(f"{u}  good.example.test/{u.split('@')[0]}/\n"
                                               for u in self.users))
        (conf / "main.cf").write_text(f"""
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.example.test
mydomain = example.test
myorigin = relay.example.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = dead.example.test, nxdomain.example.test
transport_maps = hash:{conf}/transport
virtual_mailbox_domains = good.example.test
virtual_mailbox_maps = hash:{conf}/vmailbox
virtual_mailbox_base = {d}/mail
virtual_uid_maps = static:{pwd_uid('postfix')}
virtual_gid_maps = static:{pwd_gid('postfix')}
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtp_dns_support_level = disabled
smtp_host_lookup = native
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
bounce_queue_lifetime = 1m
maximal_queue_lifetime = 1m
smtpd_banner = $myhostname ESMTP
biff = no
append_dot_mydomain = no
readme_directory = no
alias_maps =
alias_database =
local_recipient_maps =
""")
        for m in ("transport", "vmailbox"):
            subprocess.run([POSTMAP, "-c", str(conf), f"hash:{conf}/{m}"], check=True,
                           capture_output=True,
                           timeout=30)

    def start(self):
        self._write()
        env = {**os.environ, "MAIL_CONFIG": str(self.dir / "conf")}
        conf = str(self.dir / "conf")
        res = subprocess.run([POSTFIX, "-c", conf, "check"], capture_output=True, text=True,
                             timeout=60, env=env)
        assert res.returncode == 0, res.stderr
        res = subprocess.run([POSTFIX, "-c", conf, "start"], capture_output=True, text=True,
                             timeout=60, env=env)
        assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                import socket
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.makefile("rb").readline().startswith(b"220"):
                        return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("postfix did not start: " + self.log())

    def stop(self):
        subprocess.run([POSTFIX, "-c", str(self.dir / "conf"), "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        p = self.dir / "maillog"
        return p.read_text(errors="replace") if p.exists() else ""

    def delivered(self, user):
        """The messages in user's Maildir (good.example.test)."""
        box = self.dir / "mail" / "good.example.test" / user / "new"
        return [p.read_bytes() for p in box.iterdir()] if box.exists() else []


def pwd_uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def pwd_gid(name):
    import pwd
    return pwd.getpwnam(name).pw_gid
