"""serverless-tf worker runtime: the Python side of the TFEstimator / TFModel pipeline stages.

Sub-packages, from the bottom up: ``protocol`` (the job spec, column schemas, tf.Example and
TFRecord coding), ``aws`` (boto3 clients, fault injection, S3 helpers), ``registry`` (the DynamoDB
registry client and the lease keeper), ``input`` (feed queues, the spool, live batches, remainder
plans) and ``worker`` (``python -m serverless_tf.worker``: the entry point and ``ctx``);
``serve`` is the inference server (``python -m serverless_tf.serve``).
"""
import os as _os

# The one place this is set, before anything in the package imports TensorFlow: every process that
# imports the package (the worker, the inference server, tests, scripts) runs user code whose tf.keras
# must be tf_keras (Keras 2), because Keras 3 fails under MultiWorkerMirroredStrategy ("PerReplica
# unsupported type", measured here) and has no ParameterServerStrategy (keras#18624). A job can
# still choose otherwise through spec.python.env, which the worker applies before TensorFlow loads.
_os.environ["TF_USE_LEGACY_KERAS"] = "1"
