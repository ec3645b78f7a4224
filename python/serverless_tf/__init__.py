"""serverless-tf worker runtime: the Python side of the TFEstimator / TFModel pipeline stages."""
