"""The registry's errors (the same family as src/registry/errors.ts)."""
from __future__ import annotations

from typing import Any, Optional, Sequence


class RegistryError(Exception):
    """Base of the registry errors."""


class MemberConflictError(RegistryError):
    def __init__(self, job_id: str, role: str, index: int, holder_epoch: int, holder_address: str, lease_expires_at: int):
        self.job_id, self.role, self.index = job_id, role, index
        self.holder_epoch, self.holder_address, self.lease_expires_at = holder_epoch, holder_address, lease_expires_at
        super().__init__(
            f"{role}-{index} of job {job_id} is held by {holder_address} (epoch {holder_epoch}) whose lease runs until "
            f"{lease_expires_at} ms. Stop the other process, or retry after the lease expires."
        )


class FencedError(RegistryError):
    def __init__(self, job_id: str, role: str, index: int, epoch: int, current_epoch: Optional[int], current_status: Optional[str], lease_expired_at: Optional[int] = None):
        self.job_id, self.role, self.index, self.epoch = job_id, role, index, epoch
        self.current_epoch, self.current_status, self.lease_expired_at = current_epoch, current_status, lease_expired_at
        if lease_expired_at is not None:
            super().__init__(
                f"{role}-{index} of job {job_id} was fenced: its lease (epoch {epoch}) lapsed at {lease_expired_at} ms, so the process was "
                "paused or cut off longer than the lease; it may have been replaced and must stop working for the job and exit."
            )
            return
        where = "gone" if current_epoch is None else f"at epoch {current_epoch}, status {current_status}"
        why = ("Its member left ACTIVE (the watch restarted the member set, or it already finished)" if current_epoch == epoch
               else "Another registration took over")
        super().__init__(
            f"{role}-{index} of job {job_id} was fenced: this process holds epoch {epoch} but the slot is {where}. "
            f"{why}; this process must stop working for the job and exit."
        )


class LeaseLostError(RegistryError):
    """A write was about to run while its member no longer held its lease (see ``LeaseKeeper.check``)."""

    def __init__(self, role: str, index: int, job_id: str, detail: str):
        self.role, self.index, self.job_id = role, index, job_id
        super().__init__(f"{role}-{index} of job {job_id} holds no lease, so it writes nothing more: {detail}. The process must exit; "
                         "the job watch restarts the member.")


class BarrierTimeoutError(RegistryError):
    def __init__(self, job_id: str, barrier: str, missing: Sequence[str], timeout_ms: int):
        self.job_id, self.barrier, self.missing, self.timeout_ms = job_id, barrier, list(missing), timeout_ms
        super().__init__(
            f"barrier {barrier} of job {job_id} was not released within {timeout_ms} ms; missing: {', '.join(missing)}. "
            "Check that those members were launched and can reach the registry, or raise the timeout."
        )


class RegistryItemError(RegistryError):
    def __init__(self, key: str, attribute: str, expected: str, received: Any):
        self.key, self.attribute = key, attribute
        super().__init__(f"registry item {key} has a bad attribute {attribute}: expected {expected}. Received: {received!r}. Fix or delete the item.")
