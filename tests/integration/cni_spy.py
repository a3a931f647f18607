"""A CNI plugin the tests write: it speaks CNI 1.1.0 (Debian's plugins stop at
1.0.0) and records every call it gets, so a test can read what the runtime
passed: the command, the CNI_* environment and the config on stdin.

On ADD the first plugin of a list answers a made-up attachment (eth0 in the
netns with ``ADDRESS``), a chained one passes prevResult on. STATUS fails
with CNI code 50 while the ``fail-status`` file exists (its text is the
message). DEL, CHECK and GC succeed. The log is one JSON object per line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADDRESS = "10.88.254.7/24"

_SCRIPT = '''#!/usr/bin/python3 -I
import json, os, sys
LOG = {log!r}
FAIL = {fail!r}
raw = sys.stdin.read()
command = os.environ.get("CNI_COMMAND", "")
conf = json.loads(raw) if raw.strip() else None
entry = {{"plugin": os.path.basename(sys.argv[0]), "command": command,
         "env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}, "stdin": conf}}
with open(LOG, "a") as log:
    log.write(json.dumps(entry) + "\\n")
if command == "STATUS" and os.path.exists(FAIL):
    print(json.dumps({{"cniVersion": conf["cniVersion"], "code": 50, "msg": open(FAIL).read()}}))
    sys.exit(1)
if command == "ADD":
    prev = conf.get("prevResult")
    if prev is None:
        prev = {{"cniVersion": conf["cniVersion"],
                "interfaces": [{{"name": os.environ["CNI_IFNAME"], "sandbox": os.environ["CNI_NETNS"]}}],
                "ips": [{{"address": {address!r}, "interface": 0}}]}}
    print(json.dumps(prev))
'''


@dataclass
class Spy:
    bin_dir: Path
    log: Path
    fail_file: Path

    def install(self, *names: str) -> None:
        """The spy under each plugin type name in ``bin_dir``."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            path = self.bin_dir / name
            path.write_text(_SCRIPT.format(log=str(self.log), fail=str(self.fail_file), address=ADDRESS))
            path.chmod(0o755)

    def calls(self, command: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        entries = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [e for e in entries if command is None or e["command"] == command]

    def fail_status(self, message: str | None) -> None:
        if message is None:
            self.fail_file.unlink(missing_ok=True)
        else:
            self.fail_file.write_text(message)


def conflist(version: str = "1.1.0", name: str = "spynet", **extra: Any) -> dict[str, Any]:
    """dyspy1 (the attachment) then dyspy2, which declares every capability of the conventions."""
    return {
        "cniVersion": version, "name": name,
        "plugins": [
            {"type": "dyspy1"},
            {"type": "dyspy2", "capabilities": {"portMappings": True, "bandwidth": True, "dns": True,
                                                "ipRanges": True, "ips": True, "mac": True}},
        ],
        **extra,
    }
