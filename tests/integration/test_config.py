"""Configuration: layers (file < environment < flags), validation with
every error reported at once, `config check`, --version and --help."""

import re

import pytest

from harness import OPERATOR_KEY, child_env, db_execute, free_port, run_cli


def check(*args, env=None, cwd=None):
    return run_cli("config", "check", *args, env=env, cwd=cwd)


def dump(stdout):
    """The "name = value" lines of `config check` as a dict."""
    out = {}
    for line in stdout.splitlines()[1:]:
        name, _, value = line.partition(" = ")
        out[name] = value
    return out


def test_version():
    res = run_cli("--version")
    assert res.returncode == 0
    assert re.fullmatch(r"mailcast \d+\.\d+\.\d+\S*\n", res.stdout), res.stdout


def test_help_lists_commands_and_options():
    res = run_cli("--help")
    assert res.returncode == 0
    for word in ["serve", "tenant create", "key create", "config check", "--listen",
                 "--http-max-body", "MAILCAST_DATABASE"]:
        assert word in res.stdout, word
    assert "later" not in res.stdout  # serve does deliver today
    assert "(default: none) (default" not in res.stdout
    assert res.stdout.count("(default:") == len(re.findall(r"^  --[a-z-]+ (?:N|VALUE) ",
                                                            res.stdout, re.M))


def help_entries():
    """--help's options: {name: (env, text)} from "  --flag N|VALUE  ENV\n      text"."""
    out = run_cli("--help").stdout
    return {m.group(1).replace("-", "_"): (m.group(2), m.group(3)) for m in re.finditer(
        r"^  --([a-z-]+) (?:N|VALUE) +(MAILCAST_[A-Z_]+)\n      (.*)$", out, re.M)}


def test_help_shows_every_option_with_its_default_and_limits(tmp_path):
    """Every option `config check` knows is in --help with its default, and
    every number with its limits, which are the limits config check enforces."""
    entries = help_entries()
    defaults = dump(check(cwd=tmp_path).stdout)
    assert set(entries) == set(defaults)
    limits = {}
    for name, value in defaults.items():
        env, text = entries[name]
        assert env == "MAILCAST_" + name.upper()
        assert text.count("(default: ") == 1, text
        if re.fullmatch(r"-?\d+", value):
            m = re.search(r"; (-?\d+)\.\.(-?\d+) \(default: (-?\d+)\)$", text)
            assert m, (name, text)
            lo, hi, default = (int(x) for x in m.groups())
            assert default == int(value)
            limits[name] = (lo, hi)
        elif value != "(unset)":
            assert text.endswith(f"(default: {value})"), (name, text)
    # The limits shown are the ones enforced, at both ends.  config check
    # reports every invalid setting at once, so one run holds every option
    # one past its limit, and each must be named (a run an option was 195
    # process starts).
    def flags(pick):
        return [x for name, lh in limits.items() for x in (f"--{name}", str(pick(*lh)))]

    for past in (lambda lo, hi: lo - 1, lambda lo, hi: hi + 1):
        res = check(*flags(past), cwd=tmp_path)
        assert res.returncode == 2, res.stdout
        refused = set(re.findall(r"^([a-z_0-9]+): \"", res.stderr, re.M))
        assert refused == set(limits), (set(limits) - refused, refused - set(limits))
    # At their lower limits together, but for those whose lowest values
    # contradict others (a lease shorter than the SMTP timeouts, a retry cap
    # under the base).
    tied = ("lease_seconds", "retry_cap", "retry_base", "smtp_data_timeout", "http_timeout",
            "smtp_command_timeout")
    res = check(*[x for name, (lo, hi) in limits.items() if name not in tied
                  for x in (f"--{name}", str(lo))], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert entries["http_max_body"][1].endswith("; 1024..1073741824 (default: 1048576)")
    assert entries["return_path"][1] == "envelope sender (default: the campaign's From)"


def test_no_command_and_unknown_command():
    res = run_cli()
    assert res.returncode == 2 and "usage" in res.stderr
    res = run_cli("frobnicate")
    assert res.returncode == 2 and 'unknown command "frobnicate"' in res.stderr


def test_unknown_option_before_a_command_is_an_option():
    res = run_cli("--bogus", "serve")
    assert res.returncode == 2
    assert 'unknown option "--bogus"' in res.stderr and "command" not in res.stderr.split("(")[0]


@pytest.mark.parametrize("args", [["config", "check", "--bogus"], ["config", "check", "extra"],
                                  ["tenant", "list", "extra"], ["migrate", "--bogus"],
                                  ["secret", "rotate", "now"]])
def test_commands_without_arguments_refuse_them(args, tmp_path):
    res = run_cli(*args, cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "OK" not in res.stdout
    kind = "option" if args[-1].startswith("-") else "argument"
    assert f'unexpected {kind} "{args[-1]}"' in res.stderr


def test_config_check_defaults(tmp_path):
    res = check(cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == "configuration OK"
    d = dump(res.stdout)
    assert d["listen"] == "127.0.0.1:8080"
    assert d["http_max_body"] == "1048576"
    assert d["http_threads"] == "4"
    assert d["operator_key"] == "(unset)"


def test_config_layers(tmp_path):
    cfg = tmp_path / "mailcast.conf"
    cfg.write_text('# a comment\n\nhttp_threads = 3\nhttp_timeout = 11\n'
                   'log_level = "warn"\nmax_page_size = 77\n')
    env = child_env(MAILCAST_HTTP_TIMEOUT="22", MAILCAST_MAX_PAGE_SIZE="88")
    res = check("--config", str(cfg), "--max-page-size", "99", env=env)
    assert res.returncode == 0, res.stderr
    d = dump(res.stdout)
    assert d["http_threads"] == "3"      # file
    assert d["log_level"] == "warn"      # file, quoted
    assert d["http_timeout"] == "22"     # environment beats file
    assert d["max_page_size"] == "99"    # flag beats environment
    res = check("--config=" + str(cfg), "--http_threads=5", env=env)
    assert dump(res.stdout)["http_threads"] == "5"


def test_config_check_hides_the_operator_key():
    res = check(env=child_env(OPERATOR_KEY))
    assert res.returncode == 0
    assert OPERATOR_KEY not in res.stdout
    assert dump(res.stdout)["operator_key"] == "(set, hidden)"
    res = check("--operator-key", OPERATOR_KEY)
    assert OPERATOR_KEY not in res.stdout


@pytest.mark.parametrize("url", [
    "postgres://mailcast:hunter2@db.example/mailcast",
    "postgresql://db.example/mailcast?user=mailcast&password=hunter2",
    "postgresql:///mailcast?host=/tmp&password=hunter2",
])
def test_config_check_hides_database_passwords(url):
    res = check("--database", url)
    assert res.returncode == 0, res.stderr
    assert "hunter2" not in res.stdout + res.stderr, res.stdout


@pytest.mark.parametrize("args,env,option", [
    (["--listen", "nonsense"], {}, "listen"),
    (["--listen", "127.0.0.1:0"], {}, "listen"),
    (["--listen", "127.0.0.1:65536"], {}, "listen"),
    (["--listen", ":8080"], {}, "listen"),
    (["--http-threads", "0"], {}, "http_threads"),
    (["--http-threads", "257"], {}, "http_threads"),
    (["--http-threads", "four"], {}, "http_threads"),
    (["--http-max-body", "1023"], {}, "http_max_body"),
    (["--http-max-body", "1073741825"], {}, "http_max_body"),
    (["--http-timeout", "0"], {}, "http_timeout"),
    (["--db-pool-size", "0"], {}, "db_pool_size"),
    (["--shutdown-timeout", "-1"], {}, "shutdown_timeout"),
    (["--max-page-size", "0"], {}, "max_page_size"),
    (["--database", "mysql://localhost/x"], {}, "database"),
    (["--database", "sqlite:"], {}, "database"),
    (["--log-level", "verbose"], {}, "log_level"),
    (["--public-url", "ftp://example.org"], {}, "public_url"),
    ([], {"MAILCAST_OPERATOR_KEY": "too-short"}, "operator_key"),
    ([], {"MAILCAST_HTTP_THREADS": "x"}, "http_threads"),
    # Issue 12 finding 21: what goes into MAIL FROM and EHLO.
    (["--return-path", "bounce@example.com\r\nRCPT TO:<x@example.com>"], {}, "return_path"),
    (["--return-path", "b" * 250 + "@example.com"], {}, "return_path"),
    (["--return-path", "not-an-address"], {}, "return_path"),
    (["--helo-name", "mx.example.com\r\nQUIT"], {}, "helo_name"),
    (["--helo-name", "mx.example.com QUIT"], {}, "helo_name"),
    (["--helo-name", "a" * 254], {}, "helo_name"),
    (["--helo-name", "a..b.example"], {}, "helo_name"),
    (["--helo-name", "mx.example."], {}, "helo_name"),
    (["--webhook-retry-schedule", "5,2592001"], {}, "webhook_retry_schedule"),
    (["--webhook-retry-schedule", "5,,10"], {}, "webhook_retry_schedule"),
    (["--webhook-allow-cidr", "10.0.0.0/33"], {}, "webhook_allow_cidr"),
    (["--webhook-allow-cidr", ",".join(["127.0.0.1/32"] * 17)], {}, "webhook_allow_cidr"),
    (["--http-max-connections-per-ip", "0"], {}, "http_max_connections_per_ip"),
    (["--http-header-timeout", "0"], {}, "http_header_timeout"),
    (["--http-body-min-rate", "0"], {}, "http_body_min_rate"),
    (["--metrics-listen", "nowhere"], {}, "metrics_listen"),
    (["--bounce-listen", "nowhere"], {}, "bounce_listen"),
    (["--bounce-listen", "127.0.0.1:65536"], {}, "bounce_listen"),
    ([], {"MAILCAST_BOUNCE_DOMAIN": "not a domain"}, "bounce_domain"),
    (["--bounce-tls-cert", "/x.pem"], {}, "bounce_tls_cert"),
    (["--bounce-max-message", "1023"], {}, "bounce_max_message"),
    (["--bounce-max-message", "1073741825"], {}, "bounce_max_message"),
    (["--bounce-raw-max", "16777217"], {}, "bounce_raw_max"),
    (["--bounce-retention-days", "0"], {}, "bounce_retention_days"),
    (["--bounce-retention-days", "3651"], {}, "bounce_retention_days"),
    (["--bounce-max-connections", "0"], {}, "bounce_max_connections"),
    (["--bounce-command-timeout", "0"], {}, "bounce_command_timeout"),
    (["--bounce-session-timeout", "86401"], {}, "bounce_session_timeout"),
    (["--pacing-burst", "0"], {}, "pacing_burst"),
    (["--pacing-burst", "10001"], {}, "pacing_burst"),
    (["--pacing-horizon-ms", "9"], {}, "pacing_horizon_ms"),
    (["--pacing-horizon-ms", "1001"], {}, "pacing_horizon_ms"),
    (["--egress-max", "0"], {}, "egress_max"),
    (["--egress-max", "65"], {}, "egress_max"),
    (["--egress-pool-max", "0"], {}, "egress_pool_max"),
    (["--egress-pool-max", "10001"], {}, "egress_pool_max"),
    (["--egress-pool-members-max", "0"], {}, "egress_pool_members_max"),
    (["--egress-pool-members-max", "65"], {}, "egress_pool_members_max"),
    (["--egress-weight-max", "0"], {}, "egress_weight_max"),
    (["--egress-weight-max", "1000001"], {}, "egress_weight_max"),
])
def test_invalid_option(args, env, option):
    res = check(*args, env=child_env(**env))
    assert res.returncode == 2, res.stdout
    assert "invalid configuration" in res.stderr
    assert re.search(rf"^{option}:", res.stderr, re.M), res.stderr
    assert "configuration OK" not in res.stdout


def test_webhook_settings_at_their_limits_are_accepted():
    res = check("--webhook-retry-schedule", ",".join(["2592000"] * 32),
                "--webhook-allow-cidr", ",".join(["127.0.0.1/32"] * 16))
    assert res.returncode == 0, res.stderr
    assert "configuration OK" in res.stdout


def test_a_helo_name_without_a_dot_is_warned_about():
    res = check("--helo-name", "foo")
    assert res.returncode == 0, res.stderr
    assert "helo_name \"foo\" is not a fully qualified domain name" in res.stderr


def test_envelope_names_at_their_limits():
    host = ".".join(["a" * 63] * 4)[:253]
    res = check("--return-path", "b" * 64 + "@example.com", "--helo-name", host)
    assert res.returncode == 0, res.stderr
    assert dump(res.stdout)["helo_name"] == host
    res = check("--helo-name", "[192.0.2.1]")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("option,value", [("pacing_burst", "1"), ("pacing_burst", "10000"),
                                          ("pacing_horizon_ms", "10"),
                                          ("pacing_horizon_ms", "1000"),
                                          ("egress_max", "1"), ("egress_max", "64"),
                                          ("egress_pool_max", "1"),
                                          ("egress_pool_max", "10000"),
                                          ("egress_pool_members_max", "1"),
                                          ("egress_pool_members_max", "64"),
                                          ("egress_weight_max", "1"),
                                          ("egress_weight_max", "1000000")])
def test_pacing_limits_at_their_bounds_are_accepted(option, value):
    res = check(f"--{option.replace('_', '-')}", value)
    assert res.returncode == 0, res.stderr
    assert dump(res.stdout)[option] == value


def test_smallest_body_limit_is_accepted():
    res = check("--http-max-body", "1024")
    assert res.returncode == 0 and dump(res.stdout)["http_max_body"] == "1024"


def test_config_file_errors_are_all_reported(tmp_path):
    cfg = tmp_path / "bad.conf"
    cfg.write_text('no_such_option = 1\njust words\nlog_level = "warn\nhttp_threads = 0\n')
    res = check("--config", str(cfg))
    assert res.returncode == 2
    err = res.stderr
    assert "no_such_option" in err
    assert f"{cfg}:2" in err
    assert "unterminated" in err
    assert "http_threads" in err
    res = check("--config", str(tmp_path / "missing.conf"))
    assert res.returncode == 2 and "missing.conf" in res.stderr


def test_serve_reports_every_problem_at_once(store, new_database, tmp_path):
    db = new_database(empty=True)
    res = run_cli("serve", "--listen", "nonsense", "--http-threads", "0", database=db,
                  env=child_env(OPERATOR_KEY), cwd=tmp_path, timeout=15)
    assert res.returncode != 0
    assert re.search(r"^listen:.*nonsense", res.stderr, re.M), res.stderr
    assert re.search(r"^http_threads:.*\"0\"", res.stderr, re.M), res.stderr
    # It stopped before touching the database.
    if store == "sqlite":
        assert not (tmp_path / "db0" / "mailcast.db").exists()
    else:
        db_execute(db, "CREATE TABLE schema_migrations (version INTEGER)")  # fails if it exists


def test_serve_rejects_arguments(new_database, tmp_path):
    res = run_cli("serve", "extra", "--listen", f"127.0.0.1:{free_port()}",
                  database=new_database(), env=child_env(OPERATOR_KEY), cwd=tmp_path)
    assert res.returncode == 2 and "extra" in res.stderr


def test_bounce_options_at_their_limits(tmp_path):
    res = check("--bounce-listen", "127.0.0.1:0", "--bounce-domain", "bounces.example.com",
                "--bounce-max-message", "1024", "--bounce-raw-max", "0",
                "--bounce-retention-days", "3650", "--bounce-max-connections", "100000",
                "--bounce-command-timeout", "3600", "--bounce-session-timeout", "86400",
                "--bounce-tls-cert", "/c.pem", "--bounce-tls-key", "/k.pem", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    d = dump(res.stdout)
    assert (d["bounce_max_message"], d["bounce_retention_days"], d["bounce_raw_max"]) == (
        "1024", "3650", "0")
    env = child_env(MAILCAST_BOUNCE_DOMAIN="b.example.org", MAILCAST_BOUNCE_LISTEN="[::1]:2525")
    d = dump(check(env=env, cwd=tmp_path).stdout)
    assert (d["bounce_domain"], d["bounce_listen"]) == ("b.example.org", "[::1]:2525")
