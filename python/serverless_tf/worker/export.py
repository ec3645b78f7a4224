"""Models in and out of S3: ``ctx.export``, ``ctx.load_model`` and ``ctx.restore_or_initialize``.

Export layout (read by the checkpoint stage, functions/checkpoint): every file of the SavedModel
under ``<exportUri>artifact/``; in signature serving mode (``model.inference.servingMode``) also
the serving signature as ONNX at ``<exportUri>serving/model.onnx``, outside ``artifact/`` because
script mode downloads that prefix whole; then ``<exportUri>export.json`` written LAST, so its
presence means the export is complete::

    {"jobId", "member", "step", "files": [{"key": <S3 key>, "size": <bytes>}], "createdAt": <ms>,
     "serving": {"mode": "signature",                        # signature mode only
                 "onnx": {"key": <S3 key of model.onnx>, "opset": 17, "inputs": [Column], "outputs": [Column]}}}
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ..aws.s3 import S3Uri, download_file, download_prefix, upload_dir
from ..protocol.schema import Column

ARTIFACT_DIR = "artifact/"
EXPORT_MANIFEST = "export.json"
SERVING_DIR = "serving/"
ONNX_MODEL = "model.onnx"
#: The opset the serving signature is converted to: what the inference function's ONNX Runtime runs.
ONNX_OPSET = 17
#: TensorFlow dtypes of the serving columns (the job spec allows no others in signature mode).
_TF_DTYPES = {"FLOAT32": "float32", "FLOAT64": "float64", "INT32": "int32", "INT64": "int64"}

#: ``serving(model, features) -> {output column: tensor}``: the serving signature of a
#: signature-mode export, ``features`` holding one batch-first tensor per input column.
Serving = Callable[[Any, Mapping[str, Any]], Any]

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


class ServingSignatureError(ModelStoreError):
    """A signature-mode export whose serving signature does not fit the serving columns of the job spec.

    Raised by the chief before it uploads anything of the export, so no version is published.

    Attributes:
        column: the serving column at fault, when there is one.
    """

    def __init__(self, message: str, column: Optional[str] = None):
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class SignatureExport:
    """What a signature-mode export converts to ONNX: ``serving`` from the input to the output columns.

    ``serving`` ``None`` is :func:`call_model`.
    """

    inputs: tuple[Column, ...]
    outputs: tuple[Column, ...]
    serving: Optional[Serving] = None


def call_model(model: Any, features: Mapping[str, Any]) -> Any:
    """The default serving function: the model's call on the single input column's tensor, or on the features dict when there are several."""
    return model(next(iter(features.values())) if len(features) == 1 else features, training=False)


def export_model(s3: Any, model: Any, export_uri: Optional[str], job_id: str, member: str, is_chief: bool, step: int,
                 signature: Optional[SignatureExport] = None, once: bool = False) -> Optional[dict[str, Any]]:
    """Saves ``model`` as a SavedModel; the chief uploads it and writes ``export.json`` last.

    Every worker must call this under MultiWorkerMirroredStrategy (saving runs collectives);
    non-chief workers save to a throwaway directory. With ``signature`` (signature serving mode)
    the chief also converts the serving signature to ONNX (:func:`write_serving_onnx`), checked
    before anything is uploaded, and lists it in the manifest's ``serving`` field.

    Args:
        s3: boto3 S3 client.
        model: a tf.keras (tf_keras) model.
        export_uri: ``spec.model.exportUri`` (ends with ``/``).
        job_id, member, step: recorded in the manifest.
        is_chief: worker 0.
        signature: the serving columns and function, in signature serving mode; else ``None``.
        once: a bounded job's one export (``spec.model.exportUri``): when its ``export.json`` is
            there already (a chief restarted after exporting), nothing is uploaded, so a version
            the checkpoint stage may have published never changes file by file.

    Returns:
        The manifest written, or with ``once`` the one found (chief), else ``None``.

    Raises:
        ModelStoreError: when the job spec has no ``model.exportUri``.
        ServingSignatureError: when the serving signature does not convert or does not fit the output columns.
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
        if once:
            target = root.child(EXPORT_MANIFEST)
            try:
                found = s3.get_object(Bucket=target.bucket, Key=target.key)
            except s3.exceptions.NoSuchKey:
                found = None
            if found is not None:
                return json.loads(found["Body"].read())
        serving_dir = tmp / "serving"
        if signature is not None:
            write_serving_onnx(saved, signature, serving_dir / ONNX_MODEL)
        files: list[dict[str, Any]] = []
        for local, prefix in [(saved, ARTIFACT_DIR)] + ([(serving_dir, SERVING_DIR)] if signature is not None else []):
            at = root.child(prefix)
            files += [{"key": at.child(f["key"]).key, "size": f["size"]} for f in upload_dir(s3, local, str(at))]
        manifest: dict[str, Any] = {
            "jobId": job_id,
            "member": member,
            "step": int(step),
            "files": files,
            "createdAt": int(time.time() * 1000),
        }
        if signature is not None:
            manifest["serving"] = {"mode": "signature", "onnx": {
                "key": root.child(SERVING_DIR + ONNX_MODEL).key, "opset": ONNX_OPSET,
                "inputs": [c.to_json() for c in signature.inputs], "outputs": [c.to_json() for c in signature.outputs]}}
        target = root.child(EXPORT_MANIFEST)
        s3.put_object(Bucket=target.bucket, Key=target.key, Body=json.dumps(manifest).encode(), ContentType="application/json")
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_serving_onnx(saved_model: Path, signature: SignatureExport, path: Path) -> None:
    """Converts the serving signature over the SavedModel at ``saved_model`` to ONNX at ``path``.

    The graph has one input per input column (named after it; ``[batch]`` for a scalar,
    ``[batch, n]`` for ``{"fixed": n}``) and is checked against the output columns
    (:func:`check_serving_outputs`) before it is written.

    Raises:
        ServingSignatureError: when the serving function fails or returns something other than
            tensors by output column, when the conversion fails, or when an output does not fit.

    Example:
        >>> write_serving_onnx(Path("/tmp/model"), SignatureExport(inputs, outputs, serve), Path("/tmp/model.onnx"))  # doctest: +SKIP
    """
    # TensorFlow keeps the strategy scope stack per thread (Graph._thread_local in
    # tensorflow/python/framework/ops.py). Reloading in a fresh thread gives plain variables even
    # when ctx.export runs inside strategy.scope() or a fit callback, where the chief alone would
    # otherwise create distributed variables that the other workers never join.
    with ThreadPoolExecutor(1, thread_name_prefix="stf-onnx") as pool:
        graph = pool.submit(_convert_to_onnx, saved_model, signature).result()
    check_serving_outputs(graph, signature.outputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(graph.SerializeToString())


def _convert_to_onnx(saved_model: Path, signature: SignatureExport) -> Any:
    import tensorflow as tf
    import tf2onnx

    loaded = tf.keras.models.load_model(str(saved_model))
    serving = signature.serving or call_model
    names = [c.name for c in signature.inputs]
    refused: list[ServingSignatureError] = []

    def outputs_of(*tensors: Any) -> dict[str, Any]:
        returned = serving(loaded, dict(zip(names, tensors)))
        try:
            return outputs_by_name(returned, signature.outputs)
        except ServingSignatureError as e:
            refused.append(e)
            raise

    specs = [tf.TensorSpec([None] if c.shape == "scalar" else [None, c.shape.fixed], _TF_DTYPES[c.dtype], name=c.name) for c in signature.inputs]
    try:
        graph, _ = tf2onnx.convert.from_function(tf.function(outputs_of, input_signature=specs), input_signature=specs, opset=ONNX_OPSET)
    except Exception as e:
        if refused:  # autograph re-raises an error of traced code as a StagingError: raise ours as it was
            raise refused[0] from None
        raise ServingSignatureError(
            f"the serving signature could not be converted to ONNX opset {ONNX_OPSET}: {type(e).__name__}: {e}. "
            "Fix the serving function (ctx.export(model, serving=...)) or use ops tf2onnx converts; or serve with servingMode 'script'.") from e
    return graph


def outputs_by_name(returned: Any, columns: tuple[Column, ...]) -> dict[str, Any]:
    """What a serving function returned, by output column name: a dict as is, a single tensor for
    the single column, a list or tuple in column order.

    Raises:
        ServingSignatureError: for anything else, naming what was returned.
    """
    import tensorflow as tf

    names = [c.name for c in columns]
    if isinstance(returned, Mapping):
        return dict(returned)
    if isinstance(returned, (list, tuple)) and len(returned) == len(names):
        return dict(zip(names, returned))
    if tf.is_tensor(returned) and len(names) == 1:
        return {names[0]: returned}
    what = (f"{type(returned).__name__} of {len(returned)}" if isinstance(returned, (list, tuple))
            else "single tensor" if tf.is_tensor(returned) else type(returned).__name__)
    raise ServingSignatureError(
        f"the serving function returned a {what} for the output columns {names}; return a dict of tensors by "
        "output column name, one tensor when there is one output column, or a list of one tensor per column in column order. "
        "Pass ctx.export(model, serving=...) when the model's own outputs do not map onto the columns.")


def check_serving_outputs(graph: Any, columns: tuple[Column, ...]) -> None:
    """Checks that the ONNX ``graph`` has every output column by name, with its dtype and rank
    (1 for a scalar, 2 for ``{"fixed": n}`` with width n when the graph knows it).

    Raises:
        ServingSignatureError: naming the first column that does not fit, what it says and what the graph gives.
    """
    from onnx import TensorProto

    elem_dtypes = {TensorProto.FLOAT: "FLOAT32", TensorProto.DOUBLE: "FLOAT64", TensorProto.INT32: "INT32", TensorProto.INT64: "INT64"}
    outputs = {o.name: o.type.tensor_type for o in graph.graph.output}
    for c in columns:
        wanted = f"{c.dtype} [?]" if c.shape == "scalar" else f"{c.dtype} [?, {c.shape.fixed}]"
        t = outputs.get(c.name)
        if t is None:
            given = f"no output of that name (its outputs: {', '.join(sorted(outputs)) or 'none'})"
        else:
            dtype = elem_dtypes.get(t.elem_type) or TensorProto.DataType.Name(t.elem_type)
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim] if t.HasField("shape") else None
            fits = dtype == c.dtype and dims is not None and (
                len(dims) == 1 if c.shape == "scalar" else len(dims) == 2 and dims[1] in (None, c.shape.fixed))
            if fits:
                continue
            given = f"{dtype} of unknown shape" if dims is None else f"{dtype} [{', '.join('?' if d is None else str(d) for d in dims)}]"
        raise ServingSignatureError(
            f"serving output column {c.name!r} is {wanted} in model.inference.output.columns, but the serving signature gives {given}. "
            "Change the output column to what the signature gives, or the serving function (ctx.export(model, serving=...)) "
            f"to return {wanted} under that name: the export does not cast or reshape for you.", column=c.name)


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
