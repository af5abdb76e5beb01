"""Shared by the networking tests: `Net`, berth on one lab host, with cleanup and snapshots."""

from __future__ import annotations

import subprocess
import time

from labkit import Lab
from rootfs import ROOTFS

# Debian's busybox 1.35 wget crashes with -T: timeouts come from `timeout` instead.


class Net:
    """berth on one lab host, removing every container and network a test made."""

    def __init__(self, lab: Lab, host: str) -> None:
        self.lab, self.host = lab, host
        self.containers: list[str] = []
        self.networks: list[str] = []

    def sh(self, script: str, check: bool = True) -> str:
        return self.lab.run(self.host, ["sh", "-c", script], check=check).stdout

    def berth(self, *args: str, check: bool = True) -> dict:  # type: ignore[type-arg]
        return self.lab.berth(self.host, *args, check=check)

    def web(self, name: str, text: str, *opts: str) -> dict:  # type: ignore[type-arg]
        """An httpd container serving `text` on port 80."""
        self.containers.append(name)
        self.sh(f"mkdir -p /srv/{name} && echo {text} > /srv/{name}/index.html")
        out = self.berth(
            "run", "-d", "--name", name, "--rootfs", ROOTFS, "-v", f"/srv/{name}:/www:ro",
            *opts, "httpd", "-f", "-p", "80", "-h", "/www",
        )  # fmt: skip
        # httpd listens a moment after its process starts: ask it inside its own netns
        probe = f"nsenter --net=/run/berth/netns/{name} timeout 1 wget -qO- http://127.0.0.1/"
        deadline = time.monotonic() + 10
        while self.sh(probe, check=False).strip() != text and time.monotonic() < deadline:
            time.sleep(0.05)
        return out

    def run(self, name: str, *opts_and_cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.containers.append(name)
        argv = ["berth", "run", "--rm", "--name", name, "--rootfs", ROOTFS, *opts_and_cmd]
        return self.lab.run(self.host, argv, check=check)

    def get(self, url: str, host: str | None = None) -> str:
        return self.lab.run(host or self.host, ["timeout", "3", "wget", "-qO-", url]).stdout.strip()

    def snapshot(self) -> dict[str, str]:
        """Everything networking could have changed on the host."""
        return {
            "links": self.sh("ip -o link show | awk -F': ' '{print $2}' | sort"),
            "addresses": self.sh("ip -4 -o addr show | awk '{print $2, $4}' | sort"),
            "addresses6": self.sh("ip -6 -o addr show scope global | awk '{print $2, $4}' | sort"),
            "nft": self.sh("nft list ruleset"),
            "state": self.sh(
                "cd /var/lib/berth && find network -type f ! -name .lock | sort | xargs -r md5sum",
                check=False,
            ),
            "netns": self.sh("ls /run/berth/netns 2>/dev/null", check=False),
            "containers": self.sh("ls /var/lib/berth/containers 2>/dev/null", check=False),
        }

    def cleanup(self) -> None:
        for name in self.containers:
            self.lab.run(self.host, ["berth", "rm", "-f", name], check=False)
        for name in self.networks:
            self.lab.run(self.host, ["berth", "network", "rm", name], check=False)
