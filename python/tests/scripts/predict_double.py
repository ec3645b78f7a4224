"""Test user script for inference: scores every batch at once, with or without a saved model."""
import tensorflow as tf


def predict(ctx):
    model = ctx.load_model() if ctx.spec.model_artifact_uri else None
    for batch in ctx.dataset():
        x = batch["x"]
        score = model(x) if model is not None else tf.reduce_sum(x, axis=1, keepdims=True)
        ctx.write({"doubled": batch["n"] * 2, "score": score})
