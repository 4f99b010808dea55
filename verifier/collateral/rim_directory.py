"""NVIDIA RIMs from a configured directory (`--nvidia-rim-dir`, `VERIFIER_NVIDIA_RIM_DIR`): the operator's RIM store.

A RIM is looked up by its RIM-service id as `<dir>/<id>.xml` (e.g. `NV_GPU_DRIVER_GH100_550.90.07.xml`, the name
NVIDIA's RIM service gives it). The directory is asked first, offline too (it is local data, not the network);
other kinds and RIMs it does not hold go to `fallback` (the RIM service, or the offline source). A RIM from here is
verified like any other (signature, chain to the pinned root at the appraisal time, version): the directory is
trusted for availability, never for authenticity. Items are not cached (`next_update` None): the files are the store.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

from ..blocking import would_block
from .base import CollateralItem, CollateralKey, CollateralSource, CollateralUnavailableError
from .nvidia_keys import KIND_RIM, RIM_ID

MAX_RIM_FILE_BYTES = 1024 * 1024


class RimDirectory:
    """A `CollateralSource` serving kind "nvidia.rim" from `directory`, everything else (and misses) from
    `fallback`."""

    guards_blocking = True  # calls verifier.blocking.would_block before any I/O (collateral.base.guarded)

    def __init__(self, directory: Path, fallback: CollateralSource) -> None:
        self.directory = directory
        self.fallback = fallback

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        """The RIM file for `key`, else `fallback.fetch(key)`. Raises CollateralUnavailableError: what the
        fallback raises, or COLLATERAL_MALFORMED for a RIM file that is not a regular file of at most 1 MiB."""
        if key.kind != KIND_RIM:
            return self.fallback.fetch(key, at=at)
        try:
            rim_id = key.param("id")
        except KeyError:
            return self.fallback.fetch(key, at=at)
        would_block("a RIM file read")
        data = self._read(rim_id) if RIM_ID.fullmatch(rim_id) else None
        if data is None:
            return self.fallback.fetch(key, at=at)
        return CollateralItem(
            key=key, data=data, fetched_at=dt.datetime.now(dt.UTC), next_update=None, source="rim-directory"
        )

    def _read(self, rim_id: str) -> bytes | None:
        path = self.directory / f"{rim_id}.xml"
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as error:
            raise CollateralUnavailableError(
                "COLLATERAL_MALFORMED", f"{KIND_RIM} {rim_id}: cannot read {path.name}: {error.strerror}"
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_RIM_FILE_BYTES:
                raise CollateralUnavailableError(
                    "COLLATERAL_MALFORMED", f"{KIND_RIM} {rim_id}: {path.name} is not a regular file of at most 1 MiB"
                )
            return os.read(fd, MAX_RIM_FILE_BYTES)
        finally:
            os.close(fd)
