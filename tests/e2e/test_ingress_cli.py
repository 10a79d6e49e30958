"""`warren tunnel ingress validate|rule`: cloudflared's output on success and
clear "file:line: key: reason" errors on failure."""
import os
import shutil

import pytest

from conftest import VECTORS, WARREN, run

GOOD = """\
tunnel: 0c9cd40e-166a-439f-8bd1-fcef1cfb28f1
ingress:
  - hostname: "*.example.com"
    path: ^/api/
    service: http://127.0.0.1:9002
  - hostname: app.example.com
    service: http://127.0.0.1:9000
  - service: http_status:404
"""


def write(dirpath, name, text):
    p = dirpath / name
    p.write_text(text)
    return p


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Flags must not leak in from the environment of whoever runs the tests."""
    for k in list(os.environ):
        if k.startswith("TUNNEL_") or k in ("NO_AUTOUPDATE", "NO_TLS_VERIFY"):
            monkeypatch.delenv(k)


def warren(args, home, cwd=None, env=None):
    e = {"HOME": str(home)}
    if env:
        e.update(env)
    return run([WARREN] + args, env=e, cwd=cwd)


def test_validate_vector_config(tmp_path, home):
    shutil.copy(os.path.join(VECTORS, "quic", "config.yml"), tmp_path / "config.yml")
    r = warren(["tunnel", "--config", "config.yml", "ingress", "validate"], home, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Validating rules from config.yml\nOK\n"


def test_validate_absolute_path_and_flag_after_verb(tmp_path, home):
    cfg = write(tmp_path, "c.yml", GOOD)
    r = warren(["tunnel", "ingress", "validate", "--config", str(cfg)], home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["Validating rules from %s" % cfg, "OK"]


def test_validate_unknown_scheme_names_file_line_key(tmp_path, home):
    write(tmp_path, "config.yml", """\
tunnel: x
ingress:
  - hostname: a.example.com
    service: http://localhost:8000
  - hostname: b.example.com
    path: /x
    service: htp://localhost
  - service: http_status:404
""")
    r = warren(["tunnel", "--config", "config.yml", "ingress", "validate"], home, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout == "Validating rules from config.yml\n"
    assert 'config.yml:7: ingress[1].service: unknown scheme "htp"' in r.stderr
    assert "OK" not in r.stdout


@pytest.mark.parametrize("body,message", [
    ("ingress:\n  - hostname: a.example.com\n    service: http://x\n",
     "config.yml:2: ingress[0]: The last ingress rule must match all URLs"),
    ("ingress:\n  - service: http://x\n  - service: http_status:404\n",
     "config.yml:2: ingress[0]: Rule #1 is matching the hostname '', but this will match every "
     "hostname"),
    ("ingress:\n  - hostname: a.*.com\n    service: http://x\n  - service: http_status:404\n",
     "config.yml:2: ingress[0].hostname: Hostname patterns can have at most one wildcard"),
    ("ingress:\n  - hostname: a.com:443\n    service: http://x\n  - service: http_status:404\n",
     "config.yml:2: ingress[0].hostname: Hostname cannot contain a port"),
    ("ingress:\n  - hostname: a.com\n  - service: http_status:404\n",
     'config.yml:2: ingress[0]: "service" is required'),
    ("ingress:\n  - service: http_status:1000\n",
     "config.yml:2: ingress[0].service: invalid HTTP status code: 1000"),
    ("ingress:\n  - service: http://x\n    originRequest:\n      connectTimeout: forever\n",
     'config.yml:4: ingress[0].originRequest.connectTimeout: invalid duration "forever"'),
    ("ingress:\n  - service: http://localhost:8080/app\n",
     "ingress rules don't support proxying to a different path"),
    ("ingress:\n\t- service: http://x\n",
     "config.yml:2: YAML error: found a tab character"),
    ("ingress:\n  - service: 'http://x\n",
     "YAML error: found unexpected end of stream"),
    ("- just\n- a list\n", "config.yml:1: the configuration must be a map of keys, found a list"),
    ("tunnel: x\n", "Validation failed: The config file doesn't contain any ingress rules"),
])
def test_validate_errors(tmp_path, home, body, message):
    write(tmp_path, "config.yml", body)
    r = warren(["tunnel", "--config", "config.yml", "ingress", "validate"], home, cwd=tmp_path)
    assert r.returncode == 1, r.stdout
    assert message in r.stderr
    assert "OK" not in r.stdout


def test_validate_warns_about_unknown_keys(tmp_path, home):
    write(tmp_path, "config.yml", GOOD + "colour: blue\n")
    r = warren(["tunnel", "--config", "config.yml", "ingress", "validate"], home, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Warning: unused keys detected in your config file" in r.stdout
    assert 'config.yml:9: unknown key "colour"; ignored' in r.stdout
    assert r.stdout.endswith("OK\n")


def test_validate_url_conflicts_with_ingress(tmp_path, home):
    write(tmp_path, "config.yml", GOOD)
    r = warren(["tunnel", "--config", "config.yml", "--url", "http://localhost:1", "ingress",
                "validate"], home, cwd=tmp_path)
    assert r.returncode == 1
    assert "You can't set the --url flag (or $TUNNEL_URL) when using multiple-origin ingress" \
        in r.stderr
    r = warren(["tunnel", "--config", "config.yml", "ingress", "validate"], home, cwd=tmp_path,
               env={"TUNNEL_URL": "http://localhost:1"})
    assert r.returncode == 1


def test_validate_json(home):
    good = '{"ingress":[{"hostname":"a.com","service":"http://localhost:1"},' \
           '{"service":"http_status:404"}]}'
    r = warren(["tunnel", "ingress", "validate", "--json", good], home)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Validating rules from cmdline flag --json\nOK\n"
    bad = '{"ingress":[{"hostname":"a.com","service":"http://localhost:1"}]}'
    r = warren(["tunnel", "ingress", "validate", "--json", bad], home)
    assert r.returncode == 1
    assert "--json: ingress[0]: The last ingress rule must match all URLs" in r.stderr
    r = warren(["tunnel", "ingress", "validate", "--json", "{not json"], home)
    assert r.returncode == 1
    assert "--json: invalid JSON" in r.stderr


def test_default_config_is_found_in_home(home):
    d = home / ".cloudflared"
    d.mkdir()
    cfg = write(d, "config.yaml", GOOD)
    r = warren(["tunnel", "ingress", "validate"], home)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Validating rules from %s\nOK\n" % cfg


def test_no_config_file(home, tmp_path):
    if any(os.path.exists(os.path.join(d, n)) for d in ("/etc/cloudflared",
                                                        "/usr/local/etc/cloudflared")
           for n in ("config.yml", "config.yaml")):
        pytest.skip("this host has a system-wide cloudflared config")
    for verb in (["validate"], ["rule", "https://a.example.com/"]):
        r = warren(["tunnel", "ingress"] + verb, home)
        assert r.returncode == 1
        assert "No configuration file was found" in r.stderr
    r = warren(["tunnel", "--config", str(tmp_path / "missing.yml"), "ingress", "validate"], home)
    assert r.returncode == 1
    assert "missing.yml: No such file or directory" in r.stderr


@pytest.mark.parametrize("url,n,lines", [
    ("https://app.example.com/path", 2,
     ["\thostname: app.example.com", "\tservice: http://127.0.0.1:9000"]),
    ("https://APP.example.com:8443/", 2,
     ["\thostname: app.example.com", "\tservice: http://127.0.0.1:9000"]),
    ("http://x.y.example.com/api/users", 1,
     ["\thostname: *.example.com", "\tpath: ^/api/", "\tservice: http://127.0.0.1:9002"]),
    ("http://x.example.com/web/api/", 3, ["\tservice: http_status:404"]),
    ("https://example.com/api/", 3, ["\tservice: http_status:404"]),
    ("https://foo.test", 3, ["\tservice: http_status:404"]),
])
def test_rule(tmp_path, home, url, n, lines):
    write(tmp_path, "config.yml", GOOD)
    r = warren(["tunnel", "--config", "config.yml", "ingress", "rule", url], home, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["Using rules from config.yml", "Matched rule #%d" % n] + lines


def test_rule_vector_config(tmp_path, home):
    shutil.copy(os.path.join(VECTORS, "quic", "config.yml"), tmp_path / "config.yml")
    r = warren(["tunnel", "--config", "config.yml", "ingress", "rule",
                "https://ws.example.test/socket"], home, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("Using rules from config.yml\nMatched rule #1\n"
                        "\thostname: ws.example.test\n\tservice: http://127.0.0.1:9001\n")


def test_rule_errors(tmp_path, home):
    write(tmp_path, "config.yml", GOOD)
    base = ["tunnel", "--config", "config.yml", "ingress", "rule"]
    r = warren(base + ["app.example.com/path"], home, cwd=tmp_path)
    assert r.returncode == 1
    assert "app.example.com/path doesn't have a hostname, consider adding a scheme" in r.stderr
    r = warren(base, home, cwd=tmp_path)
    assert r.returncode == 1
    assert "expects a single argument, the URL to test" in r.stderr
    write(tmp_path, "bad.yml", "ingress:\n  - service: nope\n")
    r = warren(["tunnel", "--config", "bad.yml", "ingress", "rule", "https://a.b/"], home,
               cwd=tmp_path)
    assert r.returncode == 1
    assert "Validation failed: bad.yml:2: ingress[0].service: nope is an invalid address" \
        in r.stderr
