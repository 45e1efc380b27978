#!/usr/bin/env python3
"""Peer client for the transfer benchmark: the Python SDKs the paper used, measured like cloudbench.

Uploads every file under a directory to an S3 bucket (boto3), an Azure Blob container
(azure-storage-blob) or a Cloud Storage bucket (google-cloud-storage), downloads each one back, and prints one JSON line with the wall and CPU time
of each phase:

    python3 scripts/transfer_peer.py --platform s3|azure|gcs --dir DIR --concurrency N --bucket NAME [--prefix peer]

The work mirrors the Rust worker's transfer phases (worker/src/phases.rs):
  * the files are read and hashed before any timing starts;
  * upload phase: one put per file, N at a time, through one SDK client shared by the threads;
  * download phase: one get per uploaded object, each verified against the source's sha256 inside
    the phase (the worker also hashes inside its timed download);
  * bucket creation and the final clean-up are not timed.

Wall time comes from time.perf_counter(), CPU time from time.process_time(): the whole process,
every thread included, so the SDK's own work (signing, hashing, HTTP) is counted.

Settings come from the environment, defaulting to the local test servers that scripts/services.sh
runs (s3s-fs, Azurite and fake-gcs-server):
  CLOUDBENCH_TEST_S3_ENDPOINT     http://127.0.0.1:8014
  CLOUDBENCH_TEST_S3_ACCESS_KEY   cloudbench-test
  CLOUDBENCH_TEST_S3_SECRET_KEY   cloudbench-test-secret
  CLOUDBENCH_TEST_AZURE_ENDPOINT  http://127.0.0.1:10000/devstoreaccount1
  CLOUDBENCH_TEST_AZURE_KEY       Azurite's well-known development account key
  CLOUDBENCH_TEST_GCS_ENDPOINT    http://127.0.0.1:80 (no credentials)

Only the JSON line goes to stdout; everything else goes to stderr. Objects that fail or come back
altered are counted in "errors" (exit status 0). If the server cannot be reached or refuses the
credentials, the script exits with status 2 and a one-line message.

Requirements: scripts/requirements-bench.txt (boto3, azure-storage-blob, google-cloud-storage).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlparse

# Azurite's development account key, published in Microsoft's documentation (not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# At most this many per-object failures are described on stderr; the rest are only counted.
MAX_REPORTED_FAILURES = 5


class SetupError(Exception):
    """The server cannot be reached or refuses us: there is nothing to measure."""


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (the SDKs' messages can span many lines)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# --------------------------------------------------------------------------------------------
# Source files
# --------------------------------------------------------------------------------------------


@dataclass
class SourceFile:
    key: str  # object key: "{prefix}/{relative path}" with "/" separators
    data: bytes
    sha256: str


def read_sources(root: Path, prefix: str) -> list[SourceFile]:
    """Every regular file under `root`, recursively, sorted by relative path, read into memory."""
    paths = sorted(
        (p for p in root.rglob("*") if p.is_file() and not p.is_symlink()),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    files = []
    for path in paths:
        data = path.read_bytes()
        rel = path.relative_to(root).as_posix()
        key = f"{prefix}/{rel}" if prefix else rel
        files.append(SourceFile(key, data, hashlib.sha256(data).hexdigest()))
    return files


# --------------------------------------------------------------------------------------------
# Platforms: each exposes the same small surface over its SDK. The put/get/delete methods are
# called from many threads at once, so they only use the one shared, thread-safe SDK client.
# --------------------------------------------------------------------------------------------


class S3Peer:
    """boto3 against an S3-compatible endpoint, path-style addressing, SigV4."""

    def __init__(self, bucket: str, concurrency: int):
        import boto3
        import botocore
        from botocore.config import Config

        self.client_name = f"boto3 {boto3.__version__}"
        self.endpoint = env("CLOUDBENCH_TEST_S3_ENDPOINT", "http://127.0.0.1:8014")
        self.bucket = bucket
        config = Config(
            region_name="us-east-1",
            signature_version="s3v4",
            # One pooled connection per worker thread, as the Rust client keeps.
            max_pool_connections=concurrency,
            # A single attempt: a failure is counted, not hidden behind retries.
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
        )
        # A client from its own session: boto3 clients are thread-safe, the default session is not.
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=env("CLOUDBENCH_TEST_S3_ACCESS_KEY", "cloudbench-test"),
            aws_secret_access_key=env("CLOUDBENCH_TEST_S3_SECRET_KEY", "cloudbench-test-secret"),
            config=config,
        )
        self._client_error = botocore.exceptions.ClientError
        self._connect_errors = (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ConnectionClosedError,
        )

    def ensure_container(self) -> bool:
        """Creates the bucket if it does not exist; True when this call created it."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except self._client_error as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(e.response.get("Error", {}).get("Code", ""))
            if status == 404 or code in ("404", "NoSuchBucket"):
                pass  # missing: create it below
            elif status == 403 or code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise SetupError(f"S3 server at {self.endpoint} refused the credentials ({one_line(e)})") from e
            else:
                raise SetupError(f"S3 server at {self.endpoint}: bucket {self.bucket!r}: {one_line(e)}") from e
        except self._connect_errors as e:
            raise SetupError(f"S3 server at {self.endpoint} is unreachable ({one_line(e)})") from e
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except self._client_error as e:
            raise SetupError(f"S3 server at {self.endpoint}: cannot create bucket {self.bucket!r}: {one_line(e)}") from e
        return True

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def delete_container(self) -> None:
        self.client.delete_bucket(Bucket=self.bucket)

    def close(self) -> None:
        self.client.close()


class AzurePeer:
    """azure-storage-blob with a shared-key credential against a Blob endpoint (or Azurite)."""

    def __init__(self, container: str, concurrency: int):
        import requests
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceExistsError,
            ResourceNotFoundError,
            ServiceRequestError,
        )
        from azure.core.pipeline.transport import RequestsTransport
        from azure.storage.blob import BlobServiceClient
        from azure.storage.blob import __version__ as blob_version

        self.client_name = f"azure-storage-blob {blob_version}"
        self.endpoint = env("CLOUDBENCH_TEST_AZURE_ENDPOINT", "http://127.0.0.1:10000/devstoreaccount1").rstrip("/")
        credential = {
            "account_name": account_name(self.endpoint),
            "account_key": env("CLOUDBENCH_TEST_AZURE_KEY", AZURITE_KEY),
        }
        # azure-core's default transport keeps requests' default pool of 10 connections per host, so
        # above 10 threads it would open and drop a connection per request. Give it one pooled
        # connection per thread, as boto3 gets with max_pool_connections. Everything else matches
        # the SDK default: urllib3 retries off (the SDK's retry policy decides), no redirects.
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=1,
            pool_maxsize=concurrency,
            max_retries=requests.adapters.Retry(total=False, redirect=False, raise_on_status=False),
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.service = BlobServiceClient(
            account_url=self.endpoint,
            credential=credential,
            transport=RequestsTransport(session=session, session_owner=True),
            # A single attempt, as for boto3: a failure is counted, not hidden behind retries.
            retry_total=0,
        )
        self.container = self.service.get_container_client(container)
        self._exists_error = ResourceExistsError
        self._not_found_error = ResourceNotFoundError
        self._auth_error = ClientAuthenticationError
        self._http_error = HttpResponseError
        self._connect_error = ServiceRequestError

    def ensure_container(self) -> bool:
        """Creates the container if it does not exist; True when this call created it."""
        try:
            self.container.create_container()
            return True
        except self._exists_error:
            return False
        except self._connect_error as e:
            raise SetupError(f"Azure Blob endpoint {self.endpoint} is unreachable ({one_line(e)})") from e
        except self._auth_error as e:  # includes a malformed account key, found when signing
            raise SetupError(f"Azure Blob endpoint {self.endpoint} refused the credentials ({one_line(e)})") from e
        except self._http_error as e:
            if e.status_code in (401, 403):  # a wrong key: the service answers 403 AuthenticationFailed
                raise SetupError(f"Azure Blob endpoint {self.endpoint} refused the credentials ({one_line(e)})") from e
            raise SetupError(
                f"Azure Blob endpoint {self.endpoint}: cannot create container {self.container.container_name!r}: {one_line(e)}"
            ) from e
        except Exception as e:
            raise SetupError(
                f"Azure Blob endpoint {self.endpoint}: cannot create container {self.container.container_name!r}: {one_line(e)}"
            ) from e

    # Objects are small (~160 KB): each is one Put Blob / one Get Blob, so the SDK's per-blob
    # parallelism is pinned to 1 and all concurrency comes from the thread pool, as with boto3.
    def put(self, key: str, data: bytes) -> None:
        self.container.get_blob_client(key).upload_blob(data, overwrite=True, max_concurrency=1)

    def get(self, key: str) -> bytes:
        return self.container.get_blob_client(key).download_blob(max_concurrency=1).readall()

    def delete(self, key: str) -> None:
        try:
            self.container.delete_blob(key)
        except self._not_found_error:
            pass  # its upload failed: nothing to delete (S3's DeleteObject succeeds here too)

    def delete_container(self) -> None:
        self.container.delete_container()

    def close(self) -> None:
        self.service.close()


class GcsPeer:
    """google-cloud-storage against Cloud Storage's JSON API (or fake-gcs-server), no credentials."""

    def __init__(self, bucket: str, concurrency: int):
        import requests
        from google.api_core import exceptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self.client_name = f"google-cloud-storage {storage.__version__}"
        self.endpoint = env("CLOUDBENCH_TEST_GCS_ENDPOINT", "http://127.0.0.1:80").rstrip("/")
        # One pooled connection per thread, as for the other two; no urllib3 retries.
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=concurrency, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.client = storage.Client(
            project="cloudbench-test",
            credentials=AnonymousCredentials(),
            _http=session,
            client_options={"api_endpoint": self.endpoint},
        )
        self.bucket = self.client.bucket(bucket)
        self._not_found = exceptions.NotFound
        self._conflict = exceptions.Conflict

    def ensure_container(self) -> bool:
        """Creates the bucket if it does not exist; True when this call created it."""
        try:
            self.client.create_bucket(self.bucket, retry=None)
            return True
        except self._conflict:
            return False
        except Exception as e:
            raise SetupError(f"Cloud Storage at {self.endpoint}: cannot create bucket {self.bucket.name!r}: {one_line(e)}") from e

    # A single attempt (retry=None), as for the others; checksums as the SDK does them by default
    # (a CRC32C sent with each upload and checked on each download).
    def put(self, key: str, data: bytes) -> None:
        self.bucket.blob(key).upload_from_string(data, retry=None)

    def get(self, key: str) -> bytes:
        return self.bucket.blob(key).download_as_bytes(retry=None)

    def delete(self, key: str) -> None:
        try:
            self.bucket.delete_blob(key, retry=None)
        except self._not_found:
            pass  # its upload failed: nothing to delete

    def delete_container(self) -> None:
        self.bucket.delete(retry=None)

    def close(self) -> None:
        self.client.close()


PEERS = {"s3": S3Peer, "azure": AzurePeer, "gcs": GcsPeer}


def account_name(endpoint: str) -> str:
    """The storage account: the first path segment of an emulator URL
    (http://127.0.0.1:10000/devstoreaccount1), else the first label of ACCOUNT.blob.core.windows.net."""
    url = urlparse(endpoint)
    segment = url.path.strip("/").split("/")[0]
    return segment or (url.hostname or "").split(".")[0]


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


@dataclass
class Phase:
    wall_s: float
    cpu_s: float
    failed: list[int]  # indices (into the source list) of the objects that failed this phase

    def to_json(self) -> dict:
        return {"wall_s": round(self.wall_s, 6), "cpu_s": round(self.cpu_s, 6)}


def run_phase(
    name: str, pool: ThreadPoolExecutor, indices: list[int], task: Callable[[int], Optional[str]]
) -> Phase:
    """Runs `task(i)` for every index on the pool and times the whole batch.

    `task` returns None on success or a short reason; an exception also counts as a failure.
    Only submitting the work and waiting for it are timed; failures are reported afterwards.
    """
    wall0, cpu0 = time.perf_counter(), time.process_time()
    futures = [(i, pool.submit(task, i)) for i in indices]
    outcomes = []
    for i, future in futures:
        try:
            outcomes.append((i, future.result()))
        except Exception as e:  # the SDK's error for this one object
            outcomes.append((i, f"{type(e).__name__}: {one_line(e)}"))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    failed = [(i, reason) for i, reason in outcomes if reason is not None]
    for i, reason in failed[:MAX_REPORTED_FAILURES]:
        print(f"transfer_peer: {name} failed for object #{i}: {reason}", file=sys.stderr)
    if len(failed) > MAX_REPORTED_FAILURES:
        print(f"transfer_peer: ... {len(failed) - MAX_REPORTED_FAILURES} more {name} failures", file=sys.stderr)
    return Phase(wall, cpu, [i for i, _ in failed])


def measure(peer, files: list[SourceFile], concurrency: int) -> tuple[Phase, Phase]:
    """The timed upload and download phases, each over one shared thread pool."""

    def upload(i: int) -> Optional[str]:
        peer.put(files[i].key, files[i].data)
        return None

    def download(i: int) -> Optional[str]:
        data = peer.get(files[i].key)
        if len(data) != len(files[i].data):
            return f"size mismatch ({len(data)} bytes, expected {len(files[i].data)})"
        if hashlib.sha256(data).hexdigest() != files[i].sha256:
            return "sha256 mismatch"
        return None

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="peer") as pool:
        up = run_phase("upload", pool, list(range(len(files))), upload)
        # Only what was uploaded is downloaded, so an object that failed is counted once.
        failed_uploads = set(up.failed)
        uploaded = [i for i in range(len(files)) if i not in failed_uploads]
        down = run_phase("download", pool, uploaded, download)
    return up, down


def clean_up(peer, files: list[SourceFile], concurrency: int, created: bool) -> None:
    """Deletes the uploaded objects, then the bucket or container if this run created it (untimed).

    Problems here are reported on stderr but do not change the measurement or the exit status.
    """
    problems = []

    def delete(i: int) -> None:
        try:
            peer.delete(files[i].key)
        except Exception as e:
            problems.append(f"{files[i].key}: {one_line(e)}")

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(delete, range(len(files))))
    if problems:
        print(f"transfer_peer: could not delete {len(problems)} object(s), e.g. {problems[0]}", file=sys.stderr)
    if created:
        try:
            peer.delete_container()
        except Exception as e:
            print(f"transfer_peer: could not delete the bucket or container this run created: {one_line(e)}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", choices=("s3", "azure", "gcs"), required=True)
    parser.add_argument("--dir", type=Path, required=True, help="directory whose files are transferred")
    parser.add_argument("--concurrency", type=int, required=True, help="threads, and pooled connections")
    parser.add_argument("--bucket", required=True, help="bucket or container (created if missing)")
    parser.add_argument("--prefix", default="peer", help="key prefix of the uploaded objects (default: peer)")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if not args.dir.is_dir():
        parser.error(f"--dir {args.dir} is not a directory")
    args.prefix = args.prefix.strip("/")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    files = read_sources(args.dir, args.prefix)
    if not files:
        print(f"transfer_peer: no files under {args.dir}", file=sys.stderr)
        return 2

    try:
        peer = PEERS[args.platform](args.bucket, args.concurrency)
    except ImportError as e:
        print(f"transfer_peer: {one_line(e)} (pip install -r scripts/requirements-bench.txt)", file=sys.stderr)
        return 2

    try:
        try:
            created = peer.ensure_container()
        except SetupError as e:
            print(f"transfer_peer: {e}", file=sys.stderr)
            return 2
        try:
            up, down = measure(peer, files, args.concurrency)
        finally:
            clean_up(peer, files, args.concurrency, created)
    finally:
        peer.close()

    result = {
        "client": peer.client_name,
        "platform": args.platform,
        "objects": len(files),
        "bytes": sum(len(f.data) for f in files),
        "concurrency": args.concurrency,
        "upload": up.to_json(),
        "download": down.to_json(),
        "errors": len(up.failed) + len(down.failed),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
