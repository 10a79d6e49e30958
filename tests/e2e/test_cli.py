"""The command-line contract: help from the command tables, version, usage errors."""
import re

from conftest import WARREN, WARREN_EDGE, free_port, run


def test_version_both_programs():
    for prog, name in ((WARREN, "warren"), (WARREN_EDGE, "warren-edge")):
        r = run([prog, "--version"])
        assert r.returncode == 0
        assert re.match(rf"{name} version \d+\.\d+\.\d+ \(revision \S+\)", r.stdout)
        assert run([prog, "version"]).stdout == r.stdout


def test_help_lists_every_subcommand():
    r = run([WARREN, "--help"])
    assert r.returncode == 0
    assert "tunnel" in r.stdout and "access" in r.stdout
    r = run([WARREN, "tunnel", "--help"])
    for sub in ("run", "login", "create", "list", "info", "delete", "cleanup", "token", "route", "ingress"):
        assert re.search(rf"^\s+{sub}\s", r.stdout, re.M), sub
    r = run([WARREN_EDGE, "--help"])
    for sub in ("init", "run", "tunnel", "route", "user", "audit"):
        assert re.search(rf"^\s+{sub}\s", r.stdout, re.M), sub


def test_subcommand_help_shows_inherited_flags_with_env():
    r = run([WARREN, "tunnel", "run", "--help"])
    assert r.returncode == 0
    assert "warren tunnel run" in r.stdout
    # tunnel-level flags are accepted on run, as cloudflared does
    assert "--credentials-file value, --cred-file value" in r.stdout
    assert "[$TUNNEL_CRED_FILE]" in r.stdout
    assert "--edge value" in r.stdout and "[$TUNNEL_EDGE]" in r.stdout
    assert "(default: 30s)" in r.stdout  # grace-period
    r = run([WARREN_EDGE, "init", "--help"])
    assert "--zone value" in r.stdout and "--data-dir value" in r.stdout


def test_help_word_and_flag_agree():
    assert run([WARREN, "tunnel", "help"]).stdout == run([WARREN, "tunnel", "--help"]).stdout


def test_unknown_command_and_flag_are_usage_errors():
    r = run([WARREN, "tunnle"])
    assert r.returncode == 2
    assert 'unknown command "tunnle"' in r.stderr
    r = run([WARREN, "tunnel", "--no-such-flag", "run"])
    assert r.returncode == 2
    assert "flag provided but not defined: -no-such-flag" in r.stderr
    r = run([WARREN, "tunnel", "--grace-period", "soon", "run"])
    assert r.returncode == 2
    assert 'invalid value "soon" for flag --grace-period' in r.stderr
    r = run([WARREN, "tunnel", "--edge"])
    assert r.returncode == 2
    assert "flag needs an argument: --edge" in r.stderr


def test_group_command_without_subcommand_prints_help():
    r = run([WARREN, "tunnel", "route"])
    assert r.returncode == 2
    assert "dns" in r.stdout and "ip" in r.stdout


# Every flag of cloudflared 2023.7.3's and current cloudflared's `tunnel` and
# `tunnel run` (hidden ones too; from cmd/cloudflared/tunnel/cmd.go,
# subcommands.go and cliutil/logger.go), with a value of its kind (None: a
# boolean). --icmpv4-src/--icmpv6-src come with the ICMP proxy.
CLOUDFLARED_TUNNEL_FLAGS = [
    ("access-key-id", "x"),
    ("api-ca-key", "x"),
    ("api-email", "x"),
    ("api-key", "x"),
    ("api-url", "x"),
    ("autoupdate-freq", "1s"),
    ("bastion", None),
    ("bucket-name", "x"),
    ("cacert", "x"),
    ("compression-quality", "1"),
    ("config", "x"),
    ("credentials-contents", "x"),
    ("credentials-file", "x"),
    ("dial-edge-timeout", "1s"),
    ("dns-resolver-addrs", "a"),
    ("edge", "a"),
    ("edge-bind-address", "x"),
    ("edge-ip-version", "x"),
    ("features", "a"),
    ("grace-period", "1s"),
    ("ha-connections", "1"),
    ("heartbeat-count", "1"),
    ("heartbeat-interval", "1s"),
    ("hello-world", None),
    ("host-key-path", "x"),
    ("hostname", "x"),
    ("http-host-header", "x"),
    ("http2-origin", None),
    ("id", "x"),
    ("is-autoupdated", None),
    ("label", "x"),
    ("lb-pool", "x"),
    ("local-ssh-port", "x"),
    ("log-directory", "x"),
    ("logfile", "x"),
    ("loglevel", "x"),
    ("management-diagnostics", None),
    ("management-hostname", "x"),
    ("max-active-flows", "1"),
    ("max-edge-addr-retries", "1"),
    ("max-fetch-size", "1"),
    ("metrics", "x"),
    ("metrics-update-freq", "1s"),
    ("name", "x"),
    ("no-autoupdate", None),
    ("no-chunked-encoding", None),
    ("no-prechecks", None),
    ("no-tls-verify", None),
    ("origin-ca-pool", "x"),
    ("origin-server-name", "x"),
    ("origincert", "x"),
    ("output", "x"),
    ("overwrite-dns", None),
    ("pidfile", "x"),
    ("post-quantum", None),
    ("protocol", "x"),
    ("proxy-address", "x"),
    ("proxy-connect-timeout", "1s"),
    ("proxy-connection-timeout", "1s"),
    ("proxy-dns", None),
    ("proxy-dns-address", "x"),
    ("proxy-dns-bootstrap", "a"),
    ("proxy-dns-max-upstream-conns", "1"),
    ("proxy-dns-port", "1"),
    ("proxy-dns-upstream", "a"),
    ("proxy-expect-continue-timeout", "1s"),
    ("proxy-keepalive-connections", "1"),
    ("proxy-keepalive-timeout", "1s"),
    ("proxy-no-happy-eyeballs", None),
    ("proxy-port", "1"),
    ("proxy-tcp-keepalive", "1s"),
    ("proxy-tls-timeout", "1s"),
    ("quic-connection-level-flow-control-limit", "1"),
    ("quic-disable-pmtu-discovery", None),
    ("quic-stream-level-flow-control-limit", "1"),
    ("quick-service", "x"),
    ("region", "x"),
    ("region-name", "x"),
    ("retries", "1"),
    ("rpc-timeout", "1s"),
    ("s3-url-host", "x"),
    ("secret-id", "x"),
    ("service-op-ip", "x"),
    ("session-token", "x"),
    ("socks5", None),
    ("ssh-idle-timeout", "1s"),
    ("ssh-max-timeout", "1s"),
    ("ssh-server", None),
    ("stdin-control", None),
    ("tag", "a"),
    ("token", "x"),
    ("token-file", "x"),
    ("trace-output", "x"),
    ("transport-loglevel", "x"),
    ("udp-unregister-session-timeout", "1s"),
    ("ui", None),
    ("unix-socket", "x"),
    ("url", "x"),
    ("use-reconnect-token", None),
    ("write-stream-timeout", "1s"),
    ("output", "json"),
]


def flag_args(flags):
    out = []
    for name, value in flags:
        out += [f"--{name}"] + ([] if value is None else [value])
    return out


def test_every_cloudflared_tunnel_flag_is_accepted_at_every_level():
    args = flag_args(CLOUDFLARED_TUNNEL_FLAGS)
    # On the program (as the systemd unit puts them), on `tunnel`, on `run`.
    for cmd in ([WARREN, *args, "tunnel", "run", "--help"],
                [WARREN, "tunnel", *args, "run", "--help"],
                [WARREN, "tunnel", "run", *args, "--help"]):
        r = run(cmd)
        assert r.returncode == 0, r.stderr
        assert "warren tunnel run" in r.stdout


def test_root_level_flags_reach_the_command():
    # `warren --config F tunnel ingress validate` reads F, as cloudflared does.
    r = run([WARREN, "--no-autoupdate", "--config", "/nonexistent/config.yml", "tunnel", "ingress",
             "validate"])
    assert r.returncode == 1
    assert "/nonexistent/config.yml" in r.stderr


def test_subcommand_flag_shadows_the_tunnel_flag_and_its_alias():
    # `tunnel` has -f (--overwrite-dns); `tunnel delete -f` is delete's --force,
    # and `tunnel list --output` is list's, as in cloudflared.
    r = run([WARREN, "tunnel", "delete", "--help"])
    assert re.search(r"^\s+--force, --f\s", r.stdout, re.M), r.stdout
    r = run([WARREN, "tunnel", "list", "--help"])
    assert re.search(r"^\s+--output value, --o value\s+Output format: json or yaml", r.stdout, re.M)


def test_tunnel_ready_needs_metrics_and_reports_failures():
    r = run([WARREN, "tunnel", "ready"])
    assert (r.returncode, r.stderr.strip()) == (1, "--metrics has to be provided")
    port = free_port()
    r = run([WARREN, "tunnel", "--metrics", f"127.0.0.1:{port}", "ready"])
    assert r.returncode == 1
    assert f'Get "http://127.0.0.1:{port}/ready": dial tcp 127.0.0.1:{port}: connect: connection refused' \
        in r.stderr
