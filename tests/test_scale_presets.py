"""The scale presets resolve to exactly the configs they had before they moved into one table
(serl.core.SCALE_PRESETS + EXECUTION_PPO). `scale_presets_expected.json` was printed from the code
before the move (scale_config, learned_config, evolve_config, inner_configs and the experiment
notebook's SE-RL seed rule); change it only together with a deliberate change of a preset."""
import ast, json
from pathlib import Path
import pytest

from serl.core import SCALES, SCALE_PRESETS, EXECUTION_PPO, scale_config, scale_preset, execution_ppo, config_to_dict, SerlError
from serl.agent.learned import learned_config, LearnedConfig
from serl.loop.inner import evolve_config, inner_configs

HERE = Path(__file__).parent
EXPECTED = json.loads((HERE / "scale_presets_expected.json").read_text())
DATASETS = ("spy", "synthetic-nasdaq100", "synthetic-csi100", "yahoo-1m", "csv:/x/a.csv")
plain = lambda cfg: json.loads(json.dumps(config_to_dict(cfg)))


@pytest.mark.parametrize("scale", SCALES)
def test_resolved_presets_unchanged(scale):
    for ds in DATASETS:
        assert plain(scale_config(scale, ds, 3)) == EXPECTED[f"scale_config/{scale}/{ds}"], ds
    lc = learned_config(scale)
    assert plain(lc) == EXPECTED[f"learned/{scale}"]
    assert isinstance(lc.ppo.hidden, tuple)
    for setting in ("single", "multi"):
        e = evolve_config(scale, setting=setting)
        assert plain(e) == EXPECTED[f"evolve/{scale}/{setting}"], setting
        assert all(isinstance(getattr(e, k), tuple) for k in ("designers", "hidden", "ma_days"))
        p, h = inner_configs(e, 7)
        assert {"ppo": plain(p), "hybrid": plain(h)} == EXPECTED[f"inner/{scale}/{setting}"], setting
        assert isinstance(p.hidden, tuple)
    seeds = scale_config(scale, "spy", 0).seeds
    assert list(seeds[:scale_preset(scale)["serl_seeds"]]) == EXPECTED[f"serl_seeds/{scale}"]   # main_table's SE-RL runs


def test_one_table():
    assert set(SCALE_PRESETS) == set(SCALES)
    assert all(set(r) == set(SCALE_PRESETS["smoke"]) for r in SCALE_PRESETS.values())
    assert LearnedConfig().ppo == learned_config("smoke").ppo                          # dataclass default = EXECUTION_PPO
    assert execution_ppo("quick") == EXECUTION_PPO and execution_ppo("paper")["n_epochs"] == 10
    with pytest.raises(SerlError, match="unknown scale"): scale_preset("huge")
    with pytest.raises(SerlError, match="unknown scale"): learned_config("huge")
    with pytest.raises(SerlError, match="unknown scale"): evolve_config("huge")


def test_unknown_keys_rejected(monkeypatch):
    "A typo in the table is an error naming the key, not a silently different preset."
    import serl.core
    bad = {**SCALE_PRESETS["smoke"], "learned": {"num_envz": 3, "ppo": {}}, "ppo": {"lr_x": 1.0}}
    monkeypatch.setitem(serl.core.SCALE_PRESETS, "smoke", bad)
    with pytest.raises(SerlError, match="num_envz"): learned_config("smoke")
    monkeypatch.setitem(serl.core.SCALE_PRESETS, "smoke", {**bad, "learned": {}})
    with pytest.raises(SerlError, match="lr_x"): learned_config("smoke")
    from serl.core import config_from_dict
    from serl.loop.inner import EvolveConfig
    with pytest.raises(SerlError, match="iteratons"): config_from_dict(EvolveConfig, {**SCALE_PRESETS["quick"]["evolve"], "iteratons": 2})


def test_generic_ppo_imports_no_market():
    "serl.agent.ppo is a generic learner: nothing from serl.market or serl.agent.envs (the hybrid part is serl.agent.hybrid)."
    import serl.agent.ppo as ppo
    tree = ast.parse(Path(ppo.__file__).read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | \
           {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("market" in m or m.endswith("envs") or "hybrid" in m for m in mods), mods
