"""The command-line contract: help from the command tables, version, usage errors."""
import re

from conftest import WARREN, WARREN_EDGE, run


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
