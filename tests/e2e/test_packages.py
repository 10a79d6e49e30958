"""The Debian packages: `make deb`'s warren and warren-edge .debs are built
from the binaries under test, then installed, started, stopped, removed and
purged with dpkg in a throw-away overlay of this machine (pkg_sandbox.sh: new
mount, network and PID namespaces; the real dpkg database is never written),
by pkg_steps.sh. The packages' control data is checked from outside."""
import hashlib
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import BUILD, ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = open(os.path.join(ROOT, "VERSION")).read().strip()


def sandbox_works():
    if os.geteuid() != 0:
        return "needs root (overlay mount and chroot)"
    for tool in ("unshare", "dpkg-deb", "dpkg-shlibdeps", "systemd-analyze", "setpriv"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([os.path.join(HERE, "pkg_sandbox.sh"), d, "/bin/true"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            return "cannot build the overlay sandbox here: " + r.stdout.strip()
    return None


@pytest.fixture(scope="module")
def debs():
    out = tempfile.mkdtemp(prefix="warren-debs-")
    try:
        r = subprocess.run([os.path.join(ROOT, "scripts", "mkdeb.sh"), BUILD, out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert r.returncode == 0, r.stderr
        paths = r.stdout.split()
        assert [os.path.basename(p) for p in paths] == [
            f"warren_{VERSION}_{arch()}.deb", f"warren-edge_{VERSION}_{arch()}.deb"]
        yield dict(zip(("warren", "warren-edge"), paths))
    finally:
        shutil.rmtree(out)


def arch():
    return subprocess.run(["dpkg", "--print-architecture"], stdout=subprocess.PIPE,
                          text=True, check=True).stdout.strip()


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", deb, name], stdout=subprocess.PIPE, text=True,
                          check=True).stdout.strip()


def contents(deb):
    out = subprocess.run(["dpkg-deb", "-c", deb], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    return {line.split()[-1].lstrip(".") for line in out.splitlines()}


def test_control_data(debs):
    for name, deb in debs.items():
        assert field(deb, "Package") == name
        assert field(deb, "Version") == VERSION
        deps = field(deb, "Depends")
        # From dpkg-shlibdeps: the libraries the binary links.
        for lib in ("libc6", "libuv1", "libgnutls30", "libngtcp2", "libjansson4", "libyaml-0-2"):
            assert lib in deps, (name, deps)
        files = contents(deb)
        assert f"/usr/bin/{name}" in files
        assert f"/lib/systemd/system/{name}.service" in files
        assert f"/usr/share/man/man1/{name}.1.gz" in files
    assert "adduser" in field(debs["warren-edge"], "Depends")
    assert "libsqlite3-0" in field(debs["warren-edge"], "Depends")
    assert "/etc/warren-edge/edge.yml" in contents(debs["warren-edge"])


def test_units_as_specified():
    unit = open(os.path.join(ROOT, "packaging", "systemd", "warren.service")).read()
    assert ("ExecStart=/usr/bin/warren --no-autoupdate --config /etc/warren/config.yml tunnel run"
            in unit.splitlines())
    edge = open(os.path.join(ROOT, "packaging", "systemd", "warren-edge.service")).read()
    for line in ("User=warren-edge", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes", "ReadWritePaths=/var/lib/warren-edge",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"):
        assert line in edge.splitlines()
    assert "CAP_NET_ADMIN" not in "\n".join(l for l in edge.splitlines() if not l.startswith("#"))
    tun = open(os.path.join(ROOT, "packaging", "examples", "tun.conf")).read()
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_ADMIN" in tun


def test_verify_catches_a_bad_unit(tmp_path):
    """The empty-output check in pkg_steps.sh means something: systemd-analyze
    verify reports an unknown key (while still exiting 0)."""
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/bin/true\nNoNewPrivilege=yes\n")
    r = subprocess.run(["systemd-analyze", "verify", str(bad)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    assert "Unknown key" in r.stdout


def status_digest():
    with open("/var/lib/dpkg/status", "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_install_start_stop_remove(debs):
    why = sandbox_works()
    if why:
        pytest.skip(why)
    before = status_digest()
    scratch = tempfile.mkdtemp(prefix="warren-pkg-")
    try:
        pkgs = os.path.join(scratch, "upper", "pkgs")
        os.makedirs(pkgs)
        for deb in debs.values():
            shutil.copy(deb, pkgs)
        shutil.copy(os.path.join(HERE, "pkg_steps.sh"), pkgs)
        r = subprocess.run([os.path.join(HERE, "pkg_sandbox.sh"), scratch, "/bin/sh",
                            "/pkgs/pkg_steps.sh", "/pkgs", VERSION],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-6000:]
        steps = [l[4:] for l in r.stdout.splitlines() if l.startswith("ok: ")]
        assert steps == ["installed", "units verified and enabled", "user and directories",
                         "binaries and man pages", "started: connector registered with the edge",
                         "stopped", "removed", "purged"], r.stdout[-6000:]
    finally:
        shutil.rmtree(scratch)
    assert status_digest() == before
