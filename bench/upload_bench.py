"""Upload throughput of a multi-GB session to an S3 server on loopback, per client library.

Makes a synthetic session in a temporary folder (``--frames`` frame files of ``--frame-mib`` MiB,
plus one ``--big-mib`` MiB file that goes up in multipart, plus ``session.json``), starts moto's S3
server (``python -m moto.server``) as its own process on 127.0.0.1 (its own process, so that the
server and the client do not share one interpreter lock), and uploads the session with:

- ``rigcapture``: service.uploads.uploader.Uploader, the service's own path (boto3, Content-MD5 on every
  request, a HEAD of every object to verify it, the journal on disk; ``--concurrency`` objects at once)
- ``boto3``: boto3's ``upload_file`` (s3transfer), the same number of files at once, no verification
- ``minio``: the MinIO SDK's ``fput_object``, the same number of files at once
- ``obstore``: obstore's ``put`` (Rust object_store), the same number of files at once

Prints MB/s (10^6 bytes per second) for each. What the figure means: moto keeps objects in memory
(spilled to temporary files) and parses every request in Python, so it is usually the bottleneck;
the figures compare the clients' overhead against one slow server and give a floor for what the
service reaches, not what a real MinIO/Ceph/AWS store on a real network gives. On this machine
(2 cores shared with other work) everything, the server included, competes for the same CPU.

    python bench/upload_bench.py [--gib 2] [--clients rigcapture,boto3,minio,obstore] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
import requests
from botocore.config import Config as BotoConfig

from rigcore.config import RemoteStorageConfig
from service.uploads import uploader as uploads
from service.uploads.uploader import Uploader

MIB = 1024 * 1024
ACCESS, SECRET, REGION = "bench-access", "bench-secret", "us-east-1"
# The keyword names rigcapture's remote_storage and the MinIO client both take.
CREDENTIALS = {"access_key": ACCESS, "secret_key": SECRET, "region": REGION}


def make_session(root: Path, frames: int, frame_mib: float, big_mib: int) -> Path:
    folder = root / "save" / "bench-session"
    for cam in range(4):
        (folder / f"cam{cam}").mkdir(parents=True)
    block = os.urandom(int(frame_mib * MIB))
    for i in range(frames):
        # Different bytes per file (the first 8 bytes), same size: cheap to make, no dedup anywhere.
        (folder / f"cam{i % 4}" / f"{i:06d}.png").write_bytes(i.to_bytes(8, "big") + block[8:])
    with (folder / "cam0" / "big.raw").open("wb") as fh:
        for _ in range(big_mib):
            fh.write(os.urandom(MIB))
    (folder / "session.json").write_text(json.dumps({"session_id": "bench-session", "status": "complete"}))
    return folder


def files_of(folder: Path) -> list[tuple[Path, str]]:
    out = [(p, p.relative_to(folder.parent).as_posix()) for p in sorted(folder.rglob("*")) if p.is_file()]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Moto:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{self.url}/moto-api/", timeout=1)
                return
            except requests.RequestException:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)

    def fresh_bucket(self, name: str) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=30)  # frees the previous client's objects
        boto3_client(self.url).create_bucket(Bucket=name)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def boto3_client(url: str, concurrency: int = 4) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
        config=BotoConfig(
            s3={"addressing_style": "path"},
            max_pool_connections=concurrency + 2,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def run_rigcapture(url: str, bucket: str, folder: Path, concurrency: int, work: Path) -> None:
    remote = RemoteStorageConfig(endpoint=url, bucket=bucket, concurrency=concurrency, **CREDENTIALS)
    uploader = Uploader(remote, folder.parent, work / f"images_data-{time.monotonic_ns()}")
    uploader.start()
    try:
        if not uploader.wait_idle(3600):
            raise RuntimeError(f"upload did not finish: {uploader.status()}")
        state = uploader.session_state(folder.name)
        if state is None or state["state"] != "uploaded":
            raise RuntimeError(f"upload failed: {uploader.status()}")
    finally:
        uploader.stop()


def run_boto3(url: str, bucket: str, folder: Path, concurrency: int, work: Path) -> None:
    client = boto3_client(url, concurrency)
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda f: client.upload_file(str(f[0]), bucket, f[1]), files_of(folder)))


def run_minio(url: str, bucket: str, folder: Path, concurrency: int, work: Path) -> None:
    from minio import Minio

    client = Minio(url.removeprefix("http://"), secure=False, **CREDENTIALS)
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda f: client.fput_object(bucket, f[1], str(f[0])), files_of(folder)))


def run_obstore(url: str, bucket: str, folder: Path, concurrency: int, work: Path) -> None:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=url,
        access_key_id=ACCESS,
        secret_access_key=SECRET,
        region=REGION,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda f: obstore.put(store, f[1], f[0]), files_of(folder)))


CLIENTS: dict[str, Callable[[str, str, Path, int, Path], None]] = {
    "rigcapture": run_rigcapture,
    "boto3": run_boto3,
    "minio": run_minio,
    "obstore": run_obstore,
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gib", type=float, default=2.0, help="session size (frames + the big file)")
    p.add_argument("--frame-mib", type=float, default=4.0)
    p.add_argument("--big-mib", type=int, default=256, help="one file this large, sent in multipart")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--clients", default=",".join(CLIENTS))
    p.add_argument("--rounds", type=int, default=1, help="each client this many times, in turn; best kept")
    p.add_argument(
        "--nice",
        type=int,
        default=uploads.UPLOAD_NICE,
        help="the rigcapture upload threads' nice value (the service uses 19: recording first)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    uploads.UPLOAD_NICE = args.nice
    frames = max(1, int((args.gib * 1024 - args.big_mib) / args.frame_mib))
    work = Path(tempfile.mkdtemp(prefix="upload-bench-"))
    moto = Moto()
    results: list[dict[str, Any]] = []
    try:
        folder = make_session(work, frames, args.frame_mib, args.big_mib)
        total = sum(f.stat().st_size for f, _ in files_of(folder))
        count = len(files_of(folder))
        if not args.json:
            print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)", flush=True)
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name in args.clients.split(","):
                bucket = f"bench-{name}"
                moto.fresh_bucket(bucket)
                t0 = time.perf_counter()
                CLIENTS[name](moto.url, bucket, folder, args.concurrency, work)
                seconds = time.perf_counter() - t0
                best[name] = min(seconds, best.get(name, seconds))
                if not args.json:
                    rate = total / seconds / 1e6
                    print(
                        f"{name:>11}: {total / 1e6:.0f} MB, {count} files: {seconds:.1f} s = {rate:.1f} MB/s",
                        flush=True,
                    )
        results = [
            {"client": n, "seconds": round(t, 2), "mb_s": round(total / t / 1e6, 1)} for n, t in best.items()
        ]
        if not args.json:
            print(f"load average at end: {os.getloadavg()[0]:.1f}")
            print("best: " + ", ".join(f"{r['client']} {r['mb_s']} MB/s" for r in results))
    finally:
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({"bytes": total, "files": count, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
