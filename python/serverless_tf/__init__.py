"""serverless-tf worker runtime: the Python side of the TFEstimator / TFModel pipeline stages."""
import os as _os

# Before anything in the package imports TensorFlow: user code's tf.keras must be tf_keras (Keras 2),
# because Keras 3 fails under MultiWorkerMirroredStrategy ("PerReplica unsupported type", measured
# here) and has no ParameterServerStrategy (keras#18624). setdefault: an explicit choice still wins.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
