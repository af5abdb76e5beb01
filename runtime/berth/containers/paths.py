"""Where a container's files live: persistent ones under the data dir, per-boot ones in /run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from berth.state.store import data_dir


def run_dir() -> Path:
    return Path(os.environ.get("BERTH_RUN_DIR") or "/run/berth")


@dataclass(frozen=True)
class ContainerPaths:
    name: str
    data: Path
    run: Path

    @classmethod
    def of(cls, name: str) -> ContainerPaths:
        return cls(name, data_dir() / "containers" / name, run_dir() / "containers" / name)

    @property
    def record(self) -> Path:
        return self.data / "record.json"

    @property
    def config(self) -> Path:
        return self.data / "config.json"

    @property
    def upper(self) -> Path:
        return self.data / "upper"

    @property
    def work(self) -> Path:
        return self.data / "work"

    @property
    def exit_file(self) -> Path:
        return self.data / "exit.json"

    @property
    def error_file(self) -> Path:
        return self.data / "start-error"

    @property
    def rootfs(self) -> Path:
        return self.run / "rootfs"


def unit_name(container: str) -> str:
    return f"berth-{container}.service"
