"""Integration-test user code whose training entry raises: fit() must fail with this traceback."""


def load_weights_from_nowhere(path):
    raise FileNotFoundError(f"integration test failure on purpose: no weights at {path}")


def train(ctx):
    load_weights_from_nowhere("/nowhere/weights.h5")
