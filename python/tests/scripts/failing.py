"""Test user script whose entry raises: the member must end FAILED with this message in its error."""


def helper_that_fails(value):
    raise ValueError(f"the user script failed on purpose: value={value}")


def train(ctx):
    helper_that_fails(42)
