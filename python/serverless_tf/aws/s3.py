"""S3 helpers the worker shares: parse ``s3://`` URIs, download one object or a prefix, upload a directory."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @staticmethod
    def parse(uri: str) -> "S3Uri":
        """Splits ``s3://bucket/key`` into its parts.

        Raises:
            ValueError: when ``uri`` is not an ``s3://bucket/...`` URI.
        """
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise ValueError(f"expected an s3://bucket/key URI. Received: {uri!r}")
        bucket, _, key = uri[5:].partition("/")
        if not bucket:
            raise ValueError(f"expected an s3://bucket/key URI with a bucket. Received: {uri!r}")
        return S3Uri(bucket, key)

    def child(self, name: str) -> "S3Uri":
        """The URI of ``name`` under this prefix (a ``/`` is added between them when missing)."""
        prefix = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return S3Uri(self.bucket, prefix + name)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def download_file(s3: Any, uri: str, dest: Path) -> Path:
    """Downloads one object to ``dest`` (parents created) and returns ``dest``."""
    loc = S3Uri.parse(uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(loc.bucket, loc.key, str(dest))
    return dest


def download_prefix(s3: Any, uri: str, dest: Path) -> list[Path]:
    """Downloads every object under the prefix ``uri`` into ``dest``, keeping relative paths.

    Raises:
        FileNotFoundError: when nothing is stored under the prefix.
    """
    loc = S3Uri.parse(uri)
    prefix = loc.key if not loc.key or loc.key.endswith("/") else loc.key + "/"
    paths: list[Path] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix):]
            if not rel or rel.endswith("/"):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(loc.bucket, obj["Key"], str(target))
            paths.append(target)
    if not paths:
        raise FileNotFoundError(f"no objects under {uri}; check the URI (it should be the prefix of a saved model)")
    return paths


# The bucket's lifecycle rules expire objects by this tag sooner than the rest of ``jobs/``
# (``LIFECYCLE`` in src/resources/definitions.ts).
KIND_TAG = "stf-kind"


def kind_tagging(kind: str) -> str:
    """The ``Tagging`` argument of an upload that the lifecycle rule for ``kind`` acts on."""
    return f"{KIND_TAG}={kind}"


def upload_dir(s3: Any, local: Path, uri: str, kind: Optional[str] = None) -> list[dict[str, Any]]:
    """Uploads every file under ``local`` to the prefix ``uri``, tagged ``stf-kind=<kind>`` when given.

    Returns:
        ``[{"key": <key relative to the prefix>, "size": <bytes>}, ...]`` sorted by key.
    """
    loc = S3Uri.parse(uri)
    files: list[dict[str, Any]] = []
    for root, _dirs, names in os.walk(local):
        for name in names:
            path = Path(root) / name
            rel = path.relative_to(local).as_posix()
            target = loc.child(rel)
            s3.upload_file(str(path), target.bucket, target.key, ExtraArgs={"Tagging": kind_tagging(kind)} if kind else None)
            files.append({"key": rel, "size": path.stat().st_size})
    return sorted(files, key=lambda f: f["key"])
