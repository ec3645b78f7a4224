"""Downloads the user's scripts and finds the entry function (``spec.python.scripts`` / ``entry``)."""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ..aws.s3 import S3Uri, download_file


class UserCodeError(RuntimeError):
    """The user's scripts cannot be downloaded or imported, or lack the entry function."""


def download_scripts(s3: Any, uris: Sequence[str], directory: Path) -> list[Path]:
    """Downloads every script to ``directory`` (one sub-folder per script, keeping its file name).

    Raises:
        UserCodeError: naming the URI that could not be fetched.
    """
    paths: list[Path] = []
    for i, uri in enumerate(uris):
        name = Path(S3Uri.parse(uri).key).name or f"script_{i}.py"
        try:
            # Scripts of one folder on S3 stay in one folder locally, so they import each other.
            folder = directory / hashlib.sha1(uri.rsplit("/", 1)[0].encode()).hexdigest()[:12]
            paths.append(download_file(s3, uri, folder / name))
        except Exception as e:
            raise UserCodeError(f"could not download the user script {uri} ({e}); check python.scripts in the job spec") from e
    return paths


def load_entry(scripts: Sequence[Path], entry: str) -> Callable[[Any], Any]:
    """Imports the first script as a module (all script folders on ``sys.path``) and returns ``entry``.

    Raises:
        UserCodeError: when the module has no callable ``entry``, naming the functions it has.
    """
    for folder in dict.fromkeys(str(p.parent) for p in scripts):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    main = scripts[0]
    spec = importlib.util.spec_from_file_location(main.stem, main)
    if spec is None or spec.loader is None:
        raise UserCodeError(f"cannot import the user script {main.name}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[main.stem] = module
    spec.loader.exec_module(module)  # errors in the user's module propagate with their own traceback
    fn = getattr(module, entry, None)
    if not callable(fn):
        functions = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module.__name__)
        raise UserCodeError(
            f"the entry function {entry!r} is not defined in {main.name}. Functions it defines: {functions or 'none'}; "
            "set the entry (setTrainEntry / setInferenceEntry) to one of them"
        )
    return fn
