"""scripts/soak.py in a 20-second smoke run (SOAK_SECONDS=20), so that the
soak script keeps working as the binaries change: the whole mix (keep-alive
and new-connection requests, WebSocket sessions, connector restarts with
SIGTERM and SIGKILL, an ephemeral tunnel, API writes, sign-in page loads)
runs once against the binaries under test, and the script's own verdict
must be a pass. With sanitizer builds the RSS figures are reported but not
judged; the processes' clean exits (LeakSanitizer included) are."""
import json
import os
import subprocess
import sys

from conftest import BUILD, ROOT


def test_soak_smoke(tmp_path):
    out = tmp_path / "soak"
    env = dict(os.environ, SOAK_SECONDS="20")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "soak.py"), "--build", BUILD,
                        "--out", str(out), "--warmup", "1", "--churn-interval", "5"],
                       capture_output=True, text=True, env=env, timeout=300)
    report = (out / "report.md").read_text() if (out / "report.md").exists() else "(no report)"
    assert r.returncode == 0, f"soak failed (rc={r.returncode}):\n{report}\n{r.stderr[-3000:]}"
    data = json.loads((out / "report.json").read_text())
    assert data["passed"] and not data["problems"]
    counts = data["counts"]
    # Every part of the mix ran.
    for kind in ("http-ka/steady", "http-new/steady", "websocket/steady", "api/api", "login/login",
                 "ephemeral/ephemeral"):
        assert counts.get(kind, {}).get("ok", 0) > 0, (kind, counts)
    assert len(data["churn"]) >= 2, data["churn"]
    print(f"soak smoke: {sum(c['ok'] for c in counts.values())} ok, churn {data['churn']}, "
          f"idle fds edge {data['idle_start']['edge'][1]} -> {data['idle_end']['edge'][1]}")
