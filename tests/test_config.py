"""The run config: one mechanism for every rule's settings (``rules:`` sections), the
translation of earlier versions' keys, dotted keys and typo suggestions."""
import pytest
import yaml

from stochep.rules import BPTT, ID
from stochep.training.build import build_rule
from stochep.training.config import Config, ConfigError, upgrade_keys


def test_old_keys_translate_to_rule_sections():
    old = {"algo": "bptt", "bptt": {"lr": 1e-4, "bptt_clip": 0.5}, "bptt_loss_last": 3,
           "bptt_clip": 2.0, "id_iters": 5, "lr": 0.01}
    new = upgrade_keys(old)
    # the old section's own value wins over the top-level one, as it did
    assert new["rules"] == {"bptt": {"lr": 1e-4, "clip": 0.5, "loss_last": 3}, "id": {"iters": 5}}
    assert "bptt" not in new and "bptt_clip" not in new and new["lr"] == 0.01
    cfg = Config.from_dict(old).resolved()
    assert (cfg.lr, build_rule(cfg).clip, build_rule(cfg).loss_last) == (1e-4, 0.5, 3)
    assert Config.from_dict({"id_tol": 1e-3}).rules == {"id": {"tol": 1e-3}}


def test_top_level_bptt_keys_without_a_section_keep_the_tuned_section():
    """An old config with ``bptt_*`` keys and no ``bptt:`` section trained with the default
    section, which overrode them; the translation keeps that."""
    cfg = Config.from_dict({"algo": "bptt", "bptt_clip": 0.25, "bptt_truncate": 4}).resolved()
    rule = build_rule(cfg)
    assert (rule.clip, rule.truncate, cfg.lr, cfg.batch_size) == (1.0, 4, 0.05, 16)


def test_rule_options_become_the_active_rules_section():
    assert upgrade_keys({"algo": "id", "rule_options": {"iters": 3}})["rules"] == {"id": {"iters": 3}}
    assert upgrade_keys({"lr": 0.1}) == {"lr": 0.1}  # today's keys pass unchanged


def test_a_checkpoint_config_of_the_previous_version_loads(tmp_path):
    """Every field as the previous version's ``to_dict`` wrote it (an EP run, resolved)."""
    d = Config().to_dict()
    d.pop("rules")
    d.update({"rule_options": {}, "bptt": {}, "bptt_spikes": "same", "bptt_loss_last": 1,
              "bptt_truncate": 0, "bptt_clip": 0.0, "id_iters": 10, "id_tol": 1e-4,
              "id_damping": 1.0})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(d))
    cfg = Config.from_dict(yaml.safe_load(path.read_text())).validate()
    assert cfg.rules["bptt"] == {"spikes": "same", "loss_last": 1, "truncate": 0, "clip": 0.0}
    assert cfg.rules["id"] == {"iters": 10, "tol": 1e-4, "damping": 1.0}
    assert cfg.resolved() is cfg


def test_every_rule_declares_its_options_the_same_way():
    assert set(BPTT.options) == {"spikes", "loss_last", "truncate", "clip"}
    assert set(ID.options) == {"iters", "tol", "damping"}
    cfg = Config()
    cfg.set("rules.id.damping", 0.5)
    assert ID.from_config(cfg).damping == 0.5
    # a first dotted key of a rule starts from the section the rule trains with
    cfg.set("rules.bptt.truncate", 7)
    assert cfg.rules["bptt"] == {**BPTT.tuned, "truncate": 7}


def test_a_rule_section_rejects_unknown_settings():
    with pytest.raises(ConfigError, match="rules.bptt.clp"):
        Config(rules={"bptt": {"clp": 1.0}}).validate()
    with pytest.raises(ValueError, match="nope"):
        Config(rules={"nope": {}}).validate()
    with pytest.raises(ConfigError, match="cannot be overridden"):
        Config(rules={"bptt": {"algo": "ep"}}).validate()


def test_a_typo_suggests_the_closest_key():
    with pytest.raises(ConfigError, match=r"'bta' \(did you mean 'beta'\?\)"):
        Config().apply_overrides(["bta=0.2"])
    with pytest.raises(ConfigError, match=r"did you mean 'epochs'"):
        Config.from_dict({"epoch": 3})


def test_config_yaml_writes_every_option_in_force_and_loads_back(digits, tmp_path):
    from stochep import Trainer
    from stochep.training.config import Config

    cfg = Config(algo="bptt", layers=[16], T_free=6, epochs=1)
    Trainer(cfg, digits, str(tmp_path / "run"), progress=False).fit()
    by_owner = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert list(by_owner) == ["data", "network", "neuron", "dynamics", "rule", "optim",
                              "hardware", "run"]
    assert by_owner["rule"]["name"] == "bptt"
    saved = Config.from_dict(by_owner).to_dict()
    # the rule's defaults and its tuned overrides are written out, not implied
    assert saved["rules"]["bptt"] == {"spikes": "same", "loss_last": 5, "truncate": 0,
                                      "clip": 1.0}
    assert (saved["lr"], saved["optimizer"], saved["batch_size"]) == (0.05, "sgd", 16)
    assert saved["neuron_options"] == {"box": "kappa"}
    again = Config.from_dict(by_owner).validate().resolved()
    assert again.to_dict() == {**Trainer(cfg, digits, progress=False).cfg.to_dict(),
                               "rules": saved["rules"], "neuron_options": {"box": "kappa"}}


@pytest.mark.parametrize("preset", sorted(p for p in __import__("os").listdir(
    __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "src", "stochep",
                               "training", "presets")) if p.endswith(".yaml")))
def test_every_preset_loads_flat_and_by_owner_alike(preset):
    from stochep import load_preset
    from stochep.training.config import Config

    cfg = load_preset(preset[:-5])
    by_owner = yaml.safe_load(yaml.safe_dump(cfg.sections()))
    assert Config.from_dict(by_owner) == cfg


def test_a_config_by_owner_names_a_wrong_key_with_its_section():
    from stochep.training.config import Config, ConfigError

    with pytest.raises(ConfigError, match=r"unknown key neuron.kapa \(did you mean 'kappa'\?\)"):
        Config.from_dict({"neuron": {"name": "hard-sigmoid", "kapa": 1.0}})
    assert Config.from_dict({"neuron": {"kappa": 1.0}, "rule": {"beta": 0.2}}).beta == 0.2
