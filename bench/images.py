"""Images, side by side: layer unpack against `tar -x` of the same layer (plain and gzip), and a
pull from a loopback docker-registry against `skopeo copy` to an OCI directory.

Rounds alternate the two contenders after one warm-up each, on /tmp (a real filesystem, as the
store's data dir is). Berth's unpack is the store's own code path (in process, confined *at
calls, one syncfs); `tar -x` gets the same page cache. Berth's pull includes unpacking the layers,
skopeo's copy does not: the ratio is a conservative one for Berth. Targets (issue 4): at least
0.8x `tar -x` and 0.8x skopeo, reported here as speed ratios (their time / ours).
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from common import BERTH, REPO, summary, timed

SOURCE_TREE = Path("/usr/lib/python3.11")  # thousands of small files and some big ones


def _layer(work: Path) -> tuple[Path, Path]:
    plain = work / "layer.tar"
    with tarfile.open(plain, "w", format=tarfile.PAX_FORMAT) as tf:
        tf.add(
            SOURCE_TREE, arcname="usr/lib/python3.11", filter=lambda i: None if "__pycache__" in i.name else i
        )
    gz = work / "layer.tar.gz"
    with open(plain, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return plain, gz


def _fresh(work: Path, name: str) -> Path:
    d = work / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    return d


def unpack(rounds: int = 5) -> dict[str, Any]:
    from berth.images.extract import extract_layer

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="berth-bench-", dir="/tmp") as tmp:
        work = Path(tmp)
        plain, gz = _layer(work)
        with tarfile.open(plain) as tf:
            entries = len(tf.getmembers())
        for label, layer, tar_flags in (("plain", plain, "-xf"), ("gzip", gz, "-xzf")):

            def berth_run(layer: Path = layer) -> None:
                dest = _fresh(work, "berth")
                with open(layer, "rb") as fh:
                    extract_layer(fh, dest, compressed_size=layer.stat().st_size)

            def tar_run(layer: Path = layer, flags: str = tar_flags) -> None:
                dest = _fresh(work, "tar")
                subprocess.run(["tar", flags, str(layer), "-C", str(dest)], check=True)
                os.sync()  # Berth's extraction ends with syncfs: flush tar's writes too

            berth_run()
            tar_run()
            b, t = [], []
            for _ in range(rounds):
                b.append(timed(berth_run))
                t.append(timed(tar_run))
            bs, ts = summary(b), summary(t)
            out[label] = {
                "layer_bytes": layer.stat().st_size,
                "tar_bytes": plain.stat().st_size,
                "entries": entries,
                "berth_seconds": bs,
                "tar_seconds": ts,
                "speed_ratio": round(ts["median"] / bs["median"], 2),
            }
    return out


def pull(rounds: int = 5, size_mib: int = 64) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from registry import start_registry

    reg = start_registry()
    try:
        with tempfile.TemporaryDirectory(prefix="berth-bench-pull-", dir="/tmp") as tmp:
            work = Path(tmp)
            rootfs = work / "rootfs.tar"
            with tarfile.open(rootfs, "w") as tf:
                for i in range(4):
                    blob = work / f"blob{i}"
                    blob.write_bytes(os.urandom(size_mib << 18))
                    tf.add(blob, arcname=f"data/blob{i}")
                    blob.unlink()
            env = {**os.environ, "BERTH_DATA_DIR": str(work / "src")}
            ref = f"{reg.host}/bench/image:1"
            subprocess.run(
                [BERTH, "image", "import", str(rootfs), "-t", "bench:1", "--json"],
                env=env,
                check=True,
                capture_output=True,
            )
            subprocess.run(
                [BERTH, "image", "push", "bench:1", ref, "--insecure", "--json"],
                env=env,
                check=True,
                capture_output=True,
            )

            def berth_run() -> None:
                data = work / "dst"
                if data.exists():
                    shutil.rmtree(data)
                proc = subprocess.run(
                    [BERTH, "image", "pull", ref, "--insecure", "--json"],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "BERTH_DATA_DIR": str(data)},
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"berth pull failed: {proc.stdout} {proc.stderr[-2000:]}")

            def skopeo_run() -> None:
                dest = work / "oci"
                if dest.exists():
                    shutil.rmtree(dest)
                subprocess.run(
                    ["skopeo", "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{dest}"],
                    check=True,
                    capture_output=True,
                )
                os.sync()

            berth_run()
            skopeo_run()
            b, s = [], []
            for _ in range(rounds):
                b.append(timed(berth_run))
                s.append(timed(skopeo_run))
            bs, ss = summary(b), summary(s)
            return {
                "image_bytes": rootfs.stat().st_size,
                "berth_pull_seconds": bs,
                "skopeo_copy_seconds": ss,
                "speed_ratio": round(ss["median"] / bs["median"], 2),
            }
    finally:
        reg.stop()


def run(rounds: int = 5) -> dict[str, Any]:
    return {"unpack": unpack(rounds), "pull": pull(rounds)}


def markdown(results: dict[str, Any]) -> str:
    rows = [
        "| what | Berth median (min-max) s | other median (min-max) s | speed ratio (other/Berth) |",
        "|---|---:|---:|---:|",
    ]
    for label, r in results["unpack"].items():
        b, t = r["berth_seconds"], r["tar_seconds"]
        rows.append(
            f"| unpack {label} layer ({r['entries']} entries, {r['tar_bytes'] / 2**20:.0f} MiB) vs `tar -x` "
            f"| {b['median']:.2f} ({b['min']:.2f}-{b['max']:.2f}) "
            f"| {t['median']:.2f} ({t['min']:.2f}-{t['max']:.2f}) | {r['speed_ratio']:.2f} |"
        )
    p = results["pull"]
    b, s = p["berth_pull_seconds"], p["skopeo_copy_seconds"]
    rows.append(
        f"| pull {p['image_bytes'] / 2**20:.0f} MiB from loopback registry (incl. unpack) "
        f"vs `skopeo copy` to OCI dir | {b['median']:.2f} ({b['min']:.2f}-{b['max']:.2f}) "
        f"| {s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f}) | {p['speed_ratio']:.2f} |"
    )
    rows += [
        "",
        "Berth's pull writes the compressed blob (kept for push, export and verify) and the unpacked "
        "layer, each durably (fsync, syncfs): twice the bytes skopeo's copy writes. Where the disk "
        "is the bound, so is the ratio: on the machine of 2026-12-08, 64 MiB writes slowed from "
        "16 ms to 230 ms once about 200 MB were dirty, and the pull measured 0.69x (0.92x on the "
        "machine before).",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    import json

    res = run(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
    print(json.dumps(res, indent=2))
    print(markdown(res))
