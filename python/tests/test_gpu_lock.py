"""python/requirements-gpu.lock against the packages the tests run (python/requirements.lock, installed here):
TensorFlow's own ``and-cuda`` ranges are met, and every runtime dependency is pinned at a version its
dependents accept. test/infra/dockerfile.test.ts checks the lock's form and its shared pins."""
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[1] / "requirements-gpu.lock"
#: The worker package's dependencies (python/pyproject.toml), with tensorflow-cpu as the GPU image replaces it.
ROOTS = ["tensorflow-cpu", "tf-keras", "tf2onnx", "boto3"]


def _pins() -> dict[str, str]:
    lines = [line.split()[0] for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in (line.split("==") for line in lines)}


def _requires(dist: str, extra: str = "") -> list[Requirement]:
    env = {**default_environment(), "python_version": "3.11", "sys_platform": "linux", "platform_machine": "x86_64", "extra": extra}
    reqs = [Requirement(r) for r in metadata.requires(dist) or []]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


def test_the_cuda_wheels_are_pinned_within_tensorflows_own_and_cuda_ranges():
    pins = _pins()
    cuda = [r for r in _requires("tensorflow-cpu", extra="and-cuda") if r.name.startswith("nvidia-")]
    assert len(cuda) >= 10, cuda
    for req in cuda:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in {LOCK.name}"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside TensorFlow's {req}"


def test_every_runtime_dependency_of_the_worker_is_pinned_at_a_version_its_dependents_accept():
    pins = _pins()
    seen: set[str] = set()
    todo = list(ROOTS)
    while todo:
        dist = todo.pop()
        if canonicalize_name(dist) in seen:
            continue
        seen.add(canonicalize_name(dist))
        for req in _requires(dist):
            name = canonicalize_name(req.name)
            if name == "tensorflow-cpu":
                continue  # the GPU image has tensorflow itself
            assert name in pins, f"{dist} needs {req}, which {LOCK.name} does not pin"
            assert req.specifier.contains(pins[name], prereleases=True), f"{dist} needs {req}; {LOCK.name} pins {pins[name]}"
            todo.append(req.name)
    assert pins["tensorflow"] == metadata.version("tensorflow-cpu")
