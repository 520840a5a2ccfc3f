"""Packaging metadata says what is true: Python version, declared imports, bounds, licence, citation.

Checked against independent sources: the ``Requires-Python`` metadata of the installed pinned
distributions, the import statements of the packages' own source, and the pins in constraints.txt.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("downscalexr", "experiments", "analysis")
# the pins whose Requires-Python set the floor (the issue: they need 3.11)
CORE_PINS = ("numpy", "pandas", "scipy", "matplotlib", "pyarrow")


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


@pytest.fixture(scope="module")
def pins() -> dict[str, Version]:
    out = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            out[canonicalize_name(name)] = Version(version.strip())
    return out


def _requirements(project: dict) -> list[Requirement]:
    reqs = [Requirement(r) for r in project["dependencies"]]
    return reqs + [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]


def _lowest_python(specifiers: list[SpecifierSet]) -> str:
    """The lowest 3.x (x < 20) that every specifier admits."""
    for minor in range(20):
        candidate = f"3.{minor}"
        if all(candidate in s for s in specifiers):
            return candidate
    raise AssertionError("no Python 3 version satisfies every pinned distribution")


def test_requires_python_matches_the_pins(project, pins):
    specs, checked = [], []
    for name in pins:
        try:
            requires = md.metadata(name).get("Requires-Python")
        except md.PackageNotFoundError:  # a pin for another platform or an extra not installed
            continue
        checked.append(name)
        if requires:
            specs.append(SpecifierSet(requires))
    assert set(CORE_PINS) <= set(checked), "the core pins must be installed to check them"
    lowest = _lowest_python(specs)
    assert project["requires-python"] == f">={lowest}"
    assert lowest == "3.11"  # what the issue measured for numpy, pandas, scipy, matplotlib, pyarrow
    assert Version(f"{sys.version_info.major}.{sys.version_info.minor}") in SpecifierSet(
        project["requires-python"]
    )


def test_ruff_targets_the_lowest_python(project):
    ruff = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]
    lowest = project["requires-python"].removeprefix(">=")
    assert ruff["target-version"] == "py" + lowest.replace(".", "")


def test_pins_satisfy_the_declared_bounds(project, pins):
    """A bound above its pin (or a pin below its bound) would make the install fail."""
    for req in _requirements(project):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"pin {name}=={pins[name]} breaks {req}"


def test_every_dependency_has_a_lower_bound_or_a_reason(project):
    unbounded = [
        r.name
        for r in map(Requirement, project["dependencies"])
        if not any(s.operator in (">=", "==", "~=") for s in r.specifier)
    ]
    assert unbounded == ["tqdm"]  # tqdm: every call the code makes exists in every tqdm 4 release


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, imported at module level) for every absolute import of a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(n) for n in tree.body} | {
        id(c) for n in tree.body if isinstance(n, ast.Try | ast.If) for c in ast.walk(n)
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name.split(".")[0], id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module.split(".")[0], id(node) in top_level))
    return out


def test_every_third_party_import_is_declared(project):
    """Imports of the three packages map to declared distributions; extras' ones are imported lazily."""
    provided = md.packages_distributions()
    core = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    extras = {
        canonicalize_name(Requirement(r).name)
        for name, reqs in project["optional-dependencies"].items()
        if name != "dev"
        for r in reqs
    }
    undeclared, eager = set(), set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for module, at_top in _imports(path):
                if module in sys.stdlib_module_names or module in PACKAGES or module == "__future__":
                    continue
                dists = {canonicalize_name(d) for d in provided.get(module, [module])}
                if not dists & (core | extras | {"distributed"}):  # dask[distributed] brings it
                    undeclared.add(f"{module} ({path.relative_to(REPO)})")
                elif not dists & core and at_top:
                    eager.add(f"{module} ({path.relative_to(REPO)})")
    assert not undeclared, "imported but not declared in pyproject.toml"
    assert not eager, "an optional extra's package must be imported inside a function"


def test_license_and_citation_agree_with_pyproject(project):
    license_text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License") and project["license"] == {"text": "MIT"}
    assert re.search(r"^Copyright \(c\) \d{4} DownScaleXR contributors$", license_text, flags=re.M)
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert {"message", "title", "authors"} <= set(cff)  # the keys CFF 1.2.0 requires
    assert all({"name"} <= set(a) or {"family-names"} <= set(a) for a in cff["authors"])
    assert cff["version"] == project["version"] and cff["license"] == "MIT"
