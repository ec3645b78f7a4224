"""The worker: one member of a job, ``python -m serverless_tf.worker`` (ENTRYPOINT of python/Dockerfile).

- :mod:`.entry`: the command line and the member's life (register, barrier, user code, DONE/FAILED).
- :mod:`.context`: ``ctx``, what the user's entry function receives.
- :mod:`.callbacks`, :mod:`.progress`: the Keras callbacks ``ctx.callbacks()`` hands out, ``STF_PROGRESS`` lines.
- :mod:`.strategy`: TF_CONFIG and the distribution strategy.
- :mod:`.user_code`: downloading the user's scripts and finding the entry function.
- :mod:`.export`: models in and out of S3 (exports, checkpoints, warm starts, ``ctx.load_model``).
- :mod:`.output`: ``ctx.write`` (shared with the inference server, :mod:`serverless_tf.serve`).
"""
from .entry import default_host, main

__all__ = ["default_host", "main"]
