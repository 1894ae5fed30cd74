"""Qiskit's own primitive tests, run against hcqw.

At test time the source distribution of the INSTALLED qiskit is fetched (``pip download --no-deps
--no-binary :all: qiskit==<version>``, cached in ``$XDG_CACHE_HOME/hcqw/qiskit-sdist``), and from it
``test/python/primitives/test_backend_sampler_v2.py``, ``test_backend_estimator_v2.py`` and
``test_statevector_sampler.py`` (with the ``test`` package they import) are extracted to a
temporary directory, patched as below (``PATCHES``; a patch that no longer applies fails the test,
so a new qiskit cannot silently run unpatched) and run with pytest in a subprocess.

Adaptations:

- ``test_backend_sampler_v2.py``, ``test_backend_estimator_v2.py``: ``hcqw.qiskit.Backend`` is
  put into the module-level ``BACKENDS``, as its only entry (upstream's ``basic_simulator`` and
  ``generic_backend_v2`` entries are kept aside as ``_UPSTREAM_BACKENDS``: Qiskit's own CI runs
  them), so every case parameterised over ``BACKENDS`` runs on hcqw. Deselected, because they do
  not involve ``BACKENDS`` (they test Qiskit's primitives on Qiskit's own backends): ``test_run_level1`` (level-1 IQ data of a
  GenericBackendV2 subclass), ``test_job_size_limit_backend_v2`` / ``_v1`` (max_circuits of a
  GenericBackendV2), ``test_iter_pub``, ``test_metadata``, ``test_circuit_with_aliased_cregs``
  (sampler; BasicSimulator only) and ``test_aer`` (estimator; needs qiskit-aer).
- ``test_statevector_sampler.py``: ``hcqw.qiskit.Sampler`` in place of ``StatevectorSampler``;
  every case runs. Tolerance: the cases whose expected counts are Qiskit's own random draws (the
  ``real_amplitudes`` cases 3-6 of ``setUp``: ``{0: 168, 1: 3389, ...}`` and alike, used by
  ``test_run_single_circuit`` "More than one parameter" and
  ``test_sampler_run_with_parameterized_circuits``) are compared with an absolute allowance of 4
  binomial standard deviations of the two draws' difference, on top of upstream's ``rtol=0.1``: at
  10,000 shots a count of 168 has a standard deviation of ~13 per draw, so two honest draws differ
  by more than 10 % often. Every other comparison keeps upstream's tolerance.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

qiskit = pytest.importorskip("qiskit")

from tests.support import ROOT  # noqa: E402

PRIMITIVES = "test/python/primitives"
FILES = ["test/__init__.py", "test/python/__init__.py", "test/python/legacy_cmaps.py", f"{PRIMITIVES}/__init__.py",
         f"{PRIMITIVES}/test_backend_sampler_v2.py", f"{PRIMITIVES}/test_backend_estimator_v2.py",
         f"{PRIMITIVES}/test_statevector_sampler.py"]
UTILS = "test/utils/"

_HCQW_BACKEND = '''

def _hcqw_backend():
    from hcqw.qiskit import Backend

    return Backend()


# hcqw's backend alone: upstream's own entries run in Qiskit's CI.
BACKENDS = [_BackendFactory("hcqw", _hcqw_backend)]
_UPSTREAM_BACKENDS = [
'''

_RANDOM_DRAW_TOLERANCE = '''
    def _assert_close_to_draws(self, bitarray, target):
        """hcqw: the target counts are Qiskit's own random draws; allow 4 standard deviations of the
        difference of two draws besides upstream's rtol."""
        self.assertEqual(bitarray.shape, target.shape)
        for idx in np.ndindex(bitarray.shape):
            counts, expected = bitarray.get_int_counts(idx), target[idx]
            shots = sum(expected.values())
            for key in set(counts) | set(expected):
                p = expected.get(key, 0) / shots
                allowance = 4 * np.sqrt(2 * shots * p * (1 - p)) + 0.1 * expected.get(key, 0)
                self.assertLessEqual(abs(counts.get(key, 0) - expected.get(key, 0)), allowance, f"index {idx} key {key}")

    def test_sampler_run(self):'''

# file -> [(old, new, expected count)]
PATCHES: dict[str, list[tuple[str, str, int]]] = {
    "test_backend_sampler_v2.py": [("\n\nBACKENDS = [\n", _HCQW_BACKEND, 1)],
    "test_backend_estimator_v2.py": [("\n\nBACKENDS = [\n", _HCQW_BACKEND, 1)],
    "test_statevector_sampler.py": [
        ("from qiskit.primitives.statevector_sampler import StatevectorSampler\n",
         "from hcqw.qiskit import Sampler as StatevectorSampler\n", 1),
        ("\n    def test_sampler_run(self):", _RANDOM_DRAW_TOLERANCE, 1),
        # "More than one parameter" (case 3) and the three parameterised circuits (cases 4-6)
        ("                    self._assert_allclose(result[0].data.meas, target)\n\n    def test_run_reverse_meas_order",
         "                    self._assert_close_to_draws(result[0].data.meas, target)\n\n    def test_run_reverse_meas_order", 1),
        ("        self._assert_allclose(result[0].data.meas, np.array(target1))\n"
         "        self._assert_allclose(result[1].data.meas, np.array(target2))\n"
         "        self._assert_allclose(result[2].data.meas, np.array(target3))\n",
         "        self._assert_close_to_draws(result[0].data.meas, np.array(target1))\n"
         "        self._assert_close_to_draws(result[1].data.meas, np.array(target2))\n"
         "        self._assert_close_to_draws(result[2].data.meas, np.array(target3))\n", 1),
    ],
}
# Cases that do not involve BACKENDS (see the module docstring), deselected.
_NOT_BACKENDS = ("not test_run_level1 and not test_job_size_limit and not test_iter_pub and not test_metadata "
                 "and not test_circuit_with_aliased_cregs and not test_aer")
SELECT = {"test_backend_sampler_v2.py": _NOT_BACKENDS, "test_backend_estimator_v2.py": _NOT_BACKENDS,
          "test_statevector_sampler.py": None}


def sdist_path() -> Path:
    """The installed qiskit's sdist, downloaded once into the cache."""
    version = qiskit.__version__
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hcqw" / "qiskit-sdist"
    path = cache / f"qiskit-{version}.tar.gz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                               f"qiskit=={version}", "-d", str(cache)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0 and path.exists(), f"cannot download qiskit {version}'s sdist:\n{done.stderr[-2000:]}"
    return path


def extract(sdist: Path, into: Path) -> Path:
    """The test files upstream's primitive tests need, under ``into``; returns the tree's root."""
    with tarfile.open(sdist) as archive:
        prefix = archive.getnames()[0].split("/")[0]
        members = [m for m in archive.getmembers() if m.isfile() and (
            m.name.removeprefix(prefix + "/") in FILES or m.name.removeprefix(prefix + "/").startswith(UTILS))]
        missing = set(FILES) - {m.name.removeprefix(prefix + "/") for m in members}
        assert not missing, f"qiskit {qiskit.__version__}'s sdist lacks {sorted(missing)}"
        archive.extractall(into, members=members, filter="data")
    return into / prefix


def patch(root: Path) -> None:
    for name, replacements in PATCHES.items():
        path = root / PRIMITIVES / name
        text = path.read_text()
        for old, new, count in replacements:
            assert text.count(old) == count, f"{name}: the patch for {old.strip()[:60]!r} no longer applies"
            text = text.replace(old, new)
        path.write_text(text)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    root = extract(sdist_path(), tmp_path_factory.mktemp("qiskit-upstream"))
    patch(root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PATCHES))
def test_upstream_primitive_tests_pass_on_hcqw(upstream, name, tmp_path):
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(upstream),
               f"{PRIMITIVES}/{name}", "-o", "addopts=", "-W", "ignore::pytest.PytestCollectionWarning"]
    if SELECT[name]:
        command += ["-k", SELECT[name]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(upstream), str(ROOT)]),
           "HCQW_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(command, cwd=upstream, env=env, capture_output=True, text=True, timeout=600)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, f"{name}: {summary}\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert " passed" in summary and "skipped" not in summary, summary
