"""Models in and out of S3: ``ctx.export``, ``ctx.load_model`` and ``ctx.restore_or_initialize``.

Export layout (read by the checkpoint stage, functions/checkpoint): every file of the SavedModel
under ``<exportUri>artifact/``, then ``<exportUri>export.json`` written LAST, so its presence
means the artifact is complete::

    {"jobId", "member", "step", "files": [{"key": <S3 key>, "size": <bytes>}], "createdAt": <ms>}
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from ..aws.s3 import S3Uri, download_file, download_prefix, upload_dir

ARTIFACT_DIR = "artifact/"
EXPORT_MANIFEST = "export.json"

_loaded_models: dict[str, Any] = {}
_last_version_ms = 0


def next_version(job_id: str, now_ms: Optional[int] = None) -> str:
    """A new sortable version name, ``<14-digit epoch ms>-<jobId>`` (as ``newVersion`` in src/protocol/model-metadata.ts).

    Strictly later than the previous one of this process, so two exports in one millisecond
    still publish in order (``latest.json`` only moves to a version that sorts after it).
    """
    global _last_version_ms
    ms = max(int(time.time() * 1000) if now_ms is None else now_ms, _last_version_ms + 1)
    _last_version_ms = ms
    return f"{ms:014d}-{job_id}"


class ModelStoreError(RuntimeError):
    """An export or load the job spec does not allow, or an artifact that is not there."""


def export_model(s3: Any, model: Any, export_uri: Optional[str], job_id: str, member: str, is_chief: bool, step: int) -> Optional[dict[str, Any]]:
    """Saves ``model`` as a SavedModel; the chief uploads it and writes ``export.json`` last.

    Every worker must call this under MultiWorkerMirroredStrategy (saving runs collectives);
    non-chief workers save to a throwaway directory.

    Args:
        s3: boto3 S3 client.
        model: a tf.keras (tf_keras) model.
        export_uri: ``spec.model.exportUri`` (ends with ``/``).
        job_id, member, step: recorded in the manifest.
        is_chief: worker 0.

    Returns:
        The manifest written (chief), else ``None``.

    Raises:
        ModelStoreError: when the job spec has no ``model.exportUri``.
    """
    if not export_uri:
        raise ModelStoreError(f"ctx.export needs model.exportUri in the job spec of {job_id}. Received: model=null; give the estimator a model id")
    tmp = Path(tempfile.mkdtemp(prefix="stf-export-"))
    try:
        saved = tmp / "model"
        model.save(str(saved))  # tf_keras: a path without extension writes a SavedModel directory
        if not is_chief:
            return None
        root = S3Uri.parse(export_uri)
        artifact = root.child(ARTIFACT_DIR)
        files = upload_dir(s3, saved, str(artifact))
        manifest = {
            "jobId": job_id,
            "member": member,
            "step": int(step),
            "files": [{"key": artifact.child(f["key"]).key, "size": f["size"]} for f in files],
            "createdAt": int(time.time() * 1000),
        }
        target = root.child(EXPORT_MANIFEST)
        s3.put_object(Bucket=target.bucket, Key=target.key, Body=json.dumps(manifest).encode(), ContentType="application/json")
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_saved_model(s3: Any, uri: Optional[str], job_id: str) -> Any:
    """Downloads the SavedModel under the prefix ``uri`` and loads it with tf.keras (cached per process).

    Raises:
        ModelStoreError: when ``uri`` is missing or holds no objects.
    """
    if not uri:
        raise ModelStoreError(f"ctx.load_model needs modelArtifactUri in the job spec of {job_id}. Received: none; run transform on a fitted TFModel")
    if uri in _loaded_models:
        return _loaded_models[uri]
    import tensorflow as tf

    tmp = Path(tempfile.mkdtemp(prefix="stf-model-"))
    try:
        download_prefix(s3, uri, tmp)
    except FileNotFoundError as e:
        raise ModelStoreError(f"no model under modelArtifactUri={uri} for job {job_id}; check that the export finished") from e
    model = tf.keras.models.load_model(str(tmp))
    _loaded_models[uri] = model
    return model


def checkpoint_prefix(bucket: str, job_id: str, step: int, epoch: int) -> str:
    """Where the weights of a checkpoint at ``step`` written by the chief holding ``epoch`` live.

    The epoch keeps a restarted attempt that reaches the same step from overwriting, file by
    file, the checkpoint in force: each upload goes to a fresh prefix, published only once complete.
    """
    return f"s3://{bucket}/jobs/{job_id}/checkpoints/step-{step:012d}-e{epoch}/"


def save_checkpoint(s3: Any, model: Any, bucket: str, job_id: str, is_chief: bool, step: int, epoch: int) -> Optional[str]:
    """Saves the model's weights; the chief uploads them and returns their S3 prefix (not yet published)."""
    tmp = Path(tempfile.mkdtemp(prefix="stf-ckpt-"))
    try:
        model.save_weights(str(tmp / "weights"))
        if not is_chief:
            return None
        uri = checkpoint_prefix(bucket, job_id, step, epoch)
        upload_dir(s3, tmp, uri, kind="checkpoint")
        return uri
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_optimizer(model: Any) -> None:
    """Creates the optimizer's variables (step count, slots) now, so ``load_weights`` restores them at once.

    Otherwise TensorFlow defers their restore to the first training step, when it reads the
    checkpoint files again, and they are gone from the temporary directory by then (NotFoundError).
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "build"):
        return  # not compiled: only the model's weights are restored
    with model.distribute_strategy.scope():
        optimizer.build(model.trainable_variables)


def restore_weights(s3: Any, model: Any, checkpoint_uri: Optional[str], init_model_uri: Optional[str]) -> bool:
    """Loads weights from a checkpoint prefix (resume) or else an initial model (warm start).

    ``init_model_uri`` may be a model's ``metadata.json`` (its ``artifactUri`` field, or the
    ``artifact/`` folder next to it) or directly a SavedModel prefix.

    Returns:
        Whether any weights were loaded.
    """
    import tensorflow as tf

    tmp = Path(tempfile.mkdtemp(prefix="stf-restore-"))
    try:
        if checkpoint_uri:
            download_prefix(s3, checkpoint_uri, tmp)
            _build_optimizer(model)
            model.load_weights(str(tmp / "weights"))
            return True
        if init_model_uri:
            artifact = init_model_uri
            if init_model_uri.endswith(".json"):
                meta = json.loads(download_file(s3, init_model_uri, tmp / "metadata.json").read_text())
                artifact = meta.get("artifactUri") or init_model_uri.rsplit("/", 1)[0] + "/" + ARTIFACT_DIR
            download_prefix(s3, artifact, tmp / "model")
            model.set_weights(tf.keras.models.load_model(str(tmp / "model")).get_weights())
            return True
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
