"""The wire formats the worker shares with the TypeScript side (docs/protocol.md).

- :mod:`.spec`: the JobSpec, parsed once at the worker's edge.
- :mod:`.schema`: column schemas and the reserved columns (``__row_id``, ``__mask``).
- :mod:`.example`: tf.Example coding of rows (imports TensorFlow).
- :mod:`.tfrecord` and :mod:`.crc32c`: TFRecord framing of serialized examples.
- :mod:`.errors`: the coding errors; :mod:`.names`: job ids and member names.

Only :mod:`.example` imports TensorFlow: the rest can be imported before the worker has set
the user's environment (``spec.python.env``), which TensorFlow must see when it loads.
"""
