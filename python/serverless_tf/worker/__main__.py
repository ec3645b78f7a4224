"""``python -m serverless_tf.worker --job-id J --role worker --index N``: see :mod:`.entry`."""
import os
import sys

from .entry import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
# os._exit: TensorFlow's collective and gRPC threads can stall interpreter teardown after the work is done.
os._exit(code)
