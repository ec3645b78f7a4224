"""Signature serving mode: the job spec's ``model.inference.servingMode``, and the chief exporting
the serving signature as ONNX beside the SavedModel (docs/protocol.md "Exports and model versions").

Real TensorFlow and tf2onnx; the ONNX files are run with onnx's reference evaluator (the Node
function runs them with ONNX Runtime). Exports go to the emulator's S3.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

import serverless_tf  # noqa: F401  (first: it selects tf_keras as tf.keras before TensorFlow is imported)
from serverless_tf.protocol.spec import JobSpec, SpecError
from serverless_tf.worker.context import Context
from serverless_tf.worker.export import EXPORT_MANIFEST, ServingSignatureError, SignatureExport, write_serving_onnx

import tensorflow as tf  # noqa: E402

needs_emulator = pytest.mark.skipif(not os.environ.get("AWS_ENDPOINT_URL"), reason="needs the emulator (run through npm test)")

PIXELS = {"name": "pixels", "dtype": "FLOAT32", "shape": {"fixed": 4}}
DIGIT = {"name": "digit", "dtype": "INT64", "shape": "scalar"}
SCORE = {"name": "score", "dtype": "FLOAT32", "shape": "scalar"}


def job_spec(inference: Optional[dict[str, Any]], bucket: str = "b", export_every_steps: int = 0) -> JobSpec:
    """A single-worker training spec whose model carries ``inference``; unbounded, exporting every
    ``export_every_steps`` steps, when that is set."""
    return JobSpec.from_dict({
        "version": 1, "jobId": "fit-onnx", "mode": "train", "cluster": {"worker": 1, "ps": 0},
        "python": {"scripts": [f"s3://{bucket}/code/model.py"], "entry": "train"},
        "input": {"columns": [PIXELS]}, "output": None, "batchSize": 8, "remainder": {"policy": "drop"},
        "bounded": not export_every_steps, "export": {"everySteps": export_every_steps},
        "queues": {"feed": {"worker-0": "q"}}, "bucket": bucket, "leaseMs": 10000,
        "model": {"modelId": "digits", "exportUri": f"s3://{bucket}/models/digits/versions/v1/",
                  "versionsUri": f"s3://{bucket}/models/digits/versions/", "inference": inference},
    })


def inference(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], mode: Optional[str] = "signature") -> dict[str, Any]:
    config = {"python": {"scripts": ["s3://b/code/model.py"], "entry": "predict"}, "batchSize": 16,
              "input": {"columns": inputs}, "output": {"columns": outputs}}
    return config if mode is None else {**config, "servingMode": mode}


def classifier() -> Any:
    tf.random.set_seed(3)
    return tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(8, activation="relu"), tf.keras.layers.Dense(3)])


def serve(model: Any, features: dict[str, Any]) -> dict[str, Any]:
    probabilities = tf.nn.softmax(model(features["pixels"], training=False))
    return {"digit": tf.argmax(probabilities, axis=1), "score": tf.reduce_max(probabilities, axis=1)}


ROWS = np.random.default_rng(5).uniform(0, 16, size=(6, 4)).astype(np.float32)


def run_onnx(data: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    graph = onnx.load_from_string(data)
    names = [o.name for o in graph.graph.output]
    return dict(zip(names, ReferenceEvaluator(graph).run(None, feeds)))


def chief(spec: JobSpec, s3: Any, is_chief: bool = True) -> Context:
    return Context(job_id=spec.job_id, mode="train", role="worker", index=0 if is_chief else 1, epoch=1, is_chief=is_chief,
                   cluster_spec={}, hyper_params={}, spec=spec, registry=None, s3=s3, sqs=None)


def keys_under(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    return {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}


# -- the job spec --------------------------------------------------------------------------------


def test_a_model_without_servingmode_or_inference_serves_by_script():
    assert job_spec(None).model.serving_mode == "script"
    assert job_spec(None).model.serving_input == ()
    assert job_spec(inference([PIXELS], [DIGIT], mode=None)).model.serving_mode == "script"


def test_signature_mode_carries_the_inference_columns_as_serving_columns():
    model = job_spec(inference([PIXELS], [DIGIT, SCORE])).model

    assert model.serving_mode == "signature"
    assert [c.to_json() for c in model.serving_input] == [PIXELS]
    assert [c.to_json() for c in model.serving_output] == [DIGIT, SCORE]


def test_an_unknown_serving_mode_is_refused_quoting_it():
    with pytest.raises(SpecError, match="servingMode='onnx'"):
        job_spec(inference([PIXELS], [DIGIT], mode="onnx"))


@pytest.mark.parametrize("inputs,outputs,quoted", [
    ([{"name": "text", "dtype": "STRING", "shape": "scalar"}], [DIGIT], "input.columns: column 'text' is STRING with shape \"scalar\""),
    ([PIXELS], [{"name": "blob", "dtype": "BYTES", "shape": "scalar"}], "output.columns: column 'blob' is BYTES"),
    ([{"name": "tokens", "dtype": "INT64", "shape": "var"}], [DIGIT], "column 'tokens' is INT64 with shape \"var\""),
])
def test_signature_mode_refuses_columns_onnx_cannot_carry_and_says_what_to_do(inputs, outputs, quoted):
    with pytest.raises(SpecError) as e:
        job_spec(inference(inputs, outputs))

    assert quoted in str(e.value)
    assert "servingMode 'script'" in str(e.value)


def test_script_mode_keeps_accepting_string_and_var_columns():
    model = job_spec(inference([{"name": "tokens", "dtype": "STRING", "shape": "var"}], [DIGIT], mode="script")).model

    assert model.serving_mode == "script" and model.serving_input[0].shape == "var"


# -- converting the signature (no S3) ------------------------------------------------------------


def signature(inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], serving: Any = None) -> SignatureExport:
    m = job_spec(inference(inputs, outputs)).model
    return SignatureExport(m.serving_input, m.serving_output, serving)


def test_without_a_serving_function_a_list_of_model_outputs_maps_onto_the_columns_in_order(tmp_path):
    # Arrange: two input columns, so the model is called on the features dict; it returns a list.
    a, b = tf.keras.Input((2,), name="a"), tf.keras.Input((), name="b")
    hidden = tf.keras.layers.Dense(2)(a)
    model = tf.keras.Model({"a": a, "b": b}, [hidden, tf.reduce_sum(hidden, axis=1) * b])
    model.save(str(tmp_path / "model"))
    columns = signature([{"name": "a", "dtype": "FLOAT32", "shape": {"fixed": 2}}, {"name": "b", "dtype": "FLOAT32", "shape": "scalar"}],
                        [{"name": "hidden", "dtype": "FLOAT32", "shape": {"fixed": 2}}, {"name": "total", "dtype": "FLOAT32", "shape": "scalar"}])
    feeds = {"a": np.array([[1, 2], [3, -4]], np.float32), "b": np.array([2, 0.5], np.float32)}

    # Act
    write_serving_onnx(tmp_path / "model", columns, tmp_path / "model.onnx")

    # Assert
    hidden_keras, total_keras = model(feeds)
    got = run_onnx((tmp_path / "model.onnx").read_bytes(), feeds)
    np.testing.assert_allclose(got["hidden"], hidden_keras.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["total"], total_keras.numpy(), rtol=1e-5, atol=1e-5)


def test_called_inside_a_strategy_scope_the_signature_is_traced_outside_it_on_plain_variables(tmp_path):
    # Arrange: what the serving function sees while it is traced.
    seen: list[tuple[bool, str]] = []

    def logits(model: Any, features: dict[str, Any]) -> Any:
        seen.append((tf.distribute.has_strategy(), type(model.weights[0]).__name__))
        return model(features["pixels"])

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = classifier()
        model.save(str(tmp_path / "model"))

        # Act: as from a fit callback, which runs inside the strategy's scope.
        write_serving_onnx(tmp_path / "model", signature([PIXELS], [{"name": "logits", "dtype": "FLOAT32", "shape": {"fixed": 3}}], logits),
                           tmp_path / "model.onnx")

    # Assert
    assert seen and set(seen) == {(False, "ResourceVariable")}, "mirrored variables made by the chief alone would wait for the other workers"
    got = run_onnx((tmp_path / "model.onnx").read_bytes(), {"pixels": ROWS})
    np.testing.assert_allclose(got["logits"], model(ROWS).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("output,serving,quoted", [
    ({"name": "score", "dtype": "FLOAT32", "shape": "scalar"}, lambda m, f: {"score": m(f["pixels"])[:, :1]},
     "'score' is FLOAT32 [?] in model.inference.output.columns, but the serving signature gives FLOAT32 [?, 1]"),
    ({"name": "logits", "dtype": "FLOAT32", "shape": {"fixed": 4}}, lambda m, f: {"logits": m(f["pixels"])},
     "'logits' is FLOAT32 [?, 4] in model.inference.output.columns, but the serving signature gives FLOAT32 [?, 3]"),
    ({"name": "digit", "dtype": "INT64", "shape": "scalar"}, lambda m, f: {"class": tf.argmax(m(f["pixels"]), axis=1)},
     "'digit' is INT64 [?] in model.inference.output.columns, but the serving signature gives no output of that name (its outputs: class)"),
])
def test_an_output_of_another_rank_width_or_name_is_refused_naming_both_sides(tmp_path, output, serving, quoted):
    classifier().save(str(tmp_path / "model"))

    with pytest.raises(ServingSignatureError) as e:
        write_serving_onnx(tmp_path / "model", signature([PIXELS], [output], serving), tmp_path / "model.onnx")

    assert quoted in str(e.value) and e.value.column == output["name"]
    assert not (tmp_path / "model.onnx").exists()


def test_a_serving_function_that_returns_no_tensors_by_column_is_refused_naming_what_it_returned(tmp_path):
    classifier().save(str(tmp_path / "model"))

    with pytest.raises(ServingSignatureError) as e:
        write_serving_onnx(tmp_path / "model", signature([PIXELS], [DIGIT, SCORE], lambda m, f: [m(f["pixels"])] * 3), tmp_path / "model.onnx")

    assert str(e.value).startswith("the serving function returned a list of 3 for the output columns ['digit', 'score']")


# -- exporting to S3 -----------------------------------------------------------------------------


@needs_emulator
def test_signature_mode_uploads_model_onnx_beside_the_artifact_and_lists_it_in_export_json(queue_and_bucket):
    # Arrange
    _sqs, s3, _url, bucket = queue_and_bucket
    spec = job_spec(inference([PIXELS], [DIGIT, SCORE]), bucket)
    model = classifier()
    prefix = "models/digits/versions/v1/"

    # Act
    returned = chief(spec, s3).export(model, serving=serve)

    # Assert: the manifest
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix + EXPORT_MANIFEST)["Body"].read())
    assert manifest == returned
    assert manifest["serving"] == {"mode": "signature", "onnx": {"key": prefix + "serving/model.onnx", "opset": 17,
                                                                 "inputs": [PIXELS], "outputs": [DIGIT, SCORE]}}
    stored = keys_under(s3, bucket, prefix)
    assert {f["key"]: f["size"] for f in manifest["files"]} == {k: v for k, v in stored.items() if k != prefix + EXPORT_MANIFEST}
    assert prefix + "serving/model.onnx" in stored and not any(k.startswith(prefix + "artifact/serving") for k in stored)
    # Assert: the ONNX signature computes what the Keras model does
    got = run_onnx(s3.get_object(Bucket=bucket, Key=prefix + "serving/model.onnx")["Body"].read(), {"pixels": ROWS})
    want = serve(model, {"pixels": tf.constant(ROWS)})
    assert got["digit"].dtype == np.int64 and got["digit"].tolist() == want["digit"].numpy().tolist()
    np.testing.assert_allclose(got["score"], want["score"].numpy(), rtol=1e-5, atol=1e-5)


@needs_emulator
def test_without_a_serving_function_the_single_model_output_is_the_single_column(queue_and_bucket):
    _sqs, s3, _url, bucket = queue_and_bucket
    logits = {"name": "logits", "dtype": "FLOAT32", "shape": {"fixed": 3}}
    model = classifier()

    manifest = chief(job_spec(inference([PIXELS], [logits]), bucket), s3).export(model)

    got = run_onnx(s3.get_object(Bucket=bucket, Key=manifest["serving"]["onnx"]["key"])["Body"].read(), {"pixels": ROWS})
    np.testing.assert_allclose(got["logits"], model(ROWS).numpy(), rtol=1e-5, atol=1e-5)


@needs_emulator
def test_a_mismatching_output_column_fails_the_export_and_uploads_nothing(queue_and_bucket):
    # Arrange: the column says INT64 where serve gives the score as float32.
    _sqs, s3, _url, bucket = queue_and_bucket
    spec = job_spec(inference([PIXELS], [DIGIT, {"name": "score", "dtype": "INT64", "shape": "scalar"}]), bucket)

    # Act
    with pytest.raises(ServingSignatureError) as e:
        chief(spec, s3).export(classifier(), serving=serve)

    # Assert
    assert e.value.column == "score"
    assert "'score' is INT64 [?]" in str(e.value) and "gives FLOAT32 [?]" in str(e.value) and "serving function" in str(e.value)
    assert keys_under(s3, bucket, "models/") == {}


@needs_emulator
def test_script_mode_writes_no_onnx_and_no_serving_field(queue_and_bucket):
    _sqs, s3, _url, bucket = queue_and_bucket
    prefix = "models/digits/versions/v1/"

    manifest = chief(job_spec(inference([PIXELS], [DIGIT, SCORE], mode="script"), bucket), s3).export(classifier(), serving=serve)

    assert "serving" not in manifest
    assert not any(k.startswith(prefix + "serving/") for k in keys_under(s3, bucket, prefix))
    assert all(f["key"].startswith(prefix + "artifact/") for f in manifest["files"])


@needs_emulator
def test_a_non_chief_worker_saves_but_neither_converts_nor_uploads(queue_and_bucket):
    # Arrange: a signature the chief would refuse, so converting would raise.
    _sqs, s3, _url, bucket = queue_and_bucket
    spec = job_spec(inference([PIXELS], [DIGIT, {"name": "score", "dtype": "INT64", "shape": "scalar"}]), bucket)

    # Act
    manifest = chief(spec, s3, is_chief=False).export(classifier(), serving=serve)

    # Assert

    assert manifest is None and keys_under(s3, bucket, "models/") == {}


@needs_emulator
def test_the_export_callback_of_an_unbounded_job_exports_with_the_serving_function_given_to_callbacks(queue_and_bucket):
    # Arrange: serve gives the two output columns; the model's own single output would not map onto them.
    _sqs, s3, _url, bucket = queue_and_bucket
    ctx = chief(job_spec(inference([PIXELS], [DIGIT, SCORE]), bucket, export_every_steps=1), s3)
    model = classifier()
    model.compile(optimizer="sgd", loss="mse")  # the callback reads the step from the optimizer
    export_callback = ctx.callbacks(serving=serve)[-1]
    export_callback.set_model(model)

    # Act: a training step ends
    export_callback.on_train_batch_end(0)

    # Assert: one new version, with its signature
    manifests = [k for k in keys_under(s3, bucket, "models/digits/versions/") if k.endswith(EXPORT_MANIFEST)]
    assert len(manifests) == 1
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifests[0])["Body"].read())
    assert manifest["serving"]["onnx"]["outputs"] == [DIGIT, SCORE]


@needs_emulator
def test_a_bounded_job_exports_once_a_restarted_chief_uploads_nothing_over_its_export(queue_and_bucket):
    # Arrange: the first attempt's chief exported; its version may be published already.
    _sqs, s3, _url, bucket = queue_and_bucket
    spec = job_spec(inference([PIXELS], [DIGIT, SCORE], mode="script"), bucket)
    prefix = "models/digits/versions/v1/"
    first = chief(spec, s3).export(classifier(), serving=serve)
    etags = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}

    # Act: a restarted chief (the set restarted after the export) exports a model with other weights.
    other = classifier()
    other.set_weights([w + 1.0 for w in other.get_weights()])
    again = chief(spec, s3).export(other, serving=serve)

    # Assert: the first export stands, file for file.
    assert again == first
    assert {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]} == etags
