"""The registry (one DynamoDB table, docs/protocol.md "Registry items"): the worker's side of src/registry/.

- :mod:`.client`: :class:`Registry`, reads and conditional writes of jobs, members, barriers, checkpoints.
- :mod:`.lease`: :class:`LeaseKeeper`, the heartbeat thread that keeps a member's lease.
- :mod:`.items`: the records (:class:`Job`, :class:`Member`, ...) and how items decode into them.
- :mod:`.errors`: the typed errors a refused condition becomes.
"""
from .client import DEFAULT_REGISTRY_TABLE, Registry, table_name_from_env
from .errors import BarrierTimeoutError, FencedError, LeaseLostError, MemberConflictError, RegistryError, RegistryItemError
from .items import FINAL_JOB_STATES, JOB_ENDING_STATES, Checkpoint, Job, Lease, Member, Progress, now_ms
from .lease import LeaseKeeper, LeaseLoss

__all__ = [
    "DEFAULT_REGISTRY_TABLE", "FINAL_JOB_STATES", "JOB_ENDING_STATES", "BarrierTimeoutError", "Checkpoint", "FencedError", "Job", "Lease", "LeaseKeeper",
    "LeaseLoss", "LeaseLostError", "Member", "MemberConflictError", "Progress", "Registry", "RegistryError", "RegistryItemError", "now_ms", "table_name_from_env",
]
