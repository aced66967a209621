"""Lab config models: [link] and [protocol], open to other tables, one-line ConfigErrors."""

import pytest

from qkdctl.config import load_config, parse_config
from qkdctl.core.errors import ConfigError

GOOD = """
[link]
fiber_loss_db_per_km = 0.2
detector_efficiency = 0.1
dark_count_prob = 6e-7
afterpulse_prob = 0.04
misalignment = 0.005

[protocol]
intensities = [0.5, 0.1, 2e-4]
intensity_probs = [0.6, 0.3, 0.1]
key_basis_prob = 0.8
block_size = 100000
eps_sec = 1e-10
eps_cor = 1e-15
ec_efficiency = 1.16
qber_abort_threshold = 0.11
"""


def write(tmp_path, text, name="lab.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_link_and_protocol_only_is_valid(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.protocol.intensities == (0.5, 0.1, 2e-4)
    assert cfg.link.distance_km is None
    m = cfg.link_model(40.0)
    assert m.distance_km == 40.0 and m.key_basis_prob == 0.8


def test_shipped_configs_load():
    for name in ("sim_bench", "planning_example"):
        cfg = load_config(f"lab_configs/{name}.toml")
        link, proto = cfg.require_planning()
        assert proto.block_size > 0 and link.detector_efficiency > 0


def test_other_tables_are_kept(tmp_path):
    cfg = load_config(write(tmp_path, GOOD + "\n[site]\nroom = 'B12'\n[engine]\nblocks = 3\n"))
    assert cfg.engine.blocks == 3
    assert cfg.model_extra["site"] == {"room": "B12"}


def test_bench_tables_are_typed(tmp_path):
    text = GOOD + (
        "\n[instruments.tagger]\ndriver = 'sim_tagger'\nresource = '127.0.0.1:5000'\n"
        "[instruments.alice]\ndriver = 'sim_alice'\n[timing]\ngate_width_ps = 300\n"
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.require_bench().tagger.resource == "127.0.0.1:5000"
    assert cfg.require_bench().alice.resource == "embedded"
    assert cfg.timing.gate_width_ps == 300


@pytest.mark.parametrize(
    "extra, expect",
    [
        ("[instruments.alice]\ndriver = 'sim_alice'\n", "instruments.tagger is missing"),
        ("[timing]\npulse_rate_hz = 1e10\ngate_width_ps = 400\n", "exceeds the pulse period"),
        ("[channels]\nH = 0\n", "channels must be distinct"),
        ("[engine]\nblock_seconds = -1\n", "engine.block_seconds = -1"),
    ],
)
def test_bench_table_errors_are_one_line(tmp_path, extra, expect):
    with pytest.raises(ConfigError, match=expect) as info:
        load_config(write(tmp_path, GOOD + "\n" + extra))
    assert "\n" not in str(info.value)


def test_planning_config_has_no_bench(tmp_path):
    with pytest.raises(ConfigError, match=r"missing table \[instruments\]"):
        load_config(write(tmp_path, GOOD)).require_bench()


def test_missing_tables_are_named_when_needed(tmp_path):
    cfg = load_config(write(tmp_path, "[engine]\nblocks = 1\n"))
    with pytest.raises(ConfigError, match=r"lab.toml: missing table\(s\) \[link\], \[protocol\]"):
        cfg.require_planning()


@pytest.mark.parametrize(
    "old, new, expect",
    [
        ("intensities = [0.5, 0.1, 2e-4]", "intensities = [0.5, 0.1, 0.1]", "mu2 > mu3"),
        ("intensities = [0.5, 0.1, 2e-4]", "intensities = [0.2, 0.1, 0.15]", "mu2 > mu3"),
        ("intensities = [0.5, 0.1, 2e-4]", "intensities = [0.25, 0.2, 0.1]", "mu1 > mu2 + mu3"),
        ("intensities = [0.5, 0.1, 2e-4]", "intensities = [0.5, 0.1]", "protocol.intensities"),
        ("intensity_probs = [0.6, 0.3, 0.1]", "intensity_probs = [0.6, 0.3, 0.3]", "sum to 1"),
        ("detector_efficiency = 0.1", "detector_efficiency = 1.5", "key link.detector_efficiency = 1.5"),
        ("misalignment = 0.005", "misalignment = -0.1", "key link.misalignment = -0.1"),
        ("block_size = 100000", "block_size = 0", "key protocol.block_size = 0"),
        ("block_size = 100000", "block_size = 'big'", "protocol.block_size"),
        ("eps_sec = 1e-10", "eps_sec = 2.0", "key protocol.eps_sec = 2.0"),
        ("ec_efficiency = 1.16", "ec_efficiency = 0.9", "greater than or equal to 1"),
        ("key_basis_prob = 0.8", "key_basis_prob = 0.8\nbogus = 1", "unknown key protocol.bogus"),
        ("ec_efficiency = 1.16\n", "", "key protocol.ec_efficiency is missing"),
    ],
)
def test_bad_values_give_one_clear_line(tmp_path, old, new, expect):
    assert old in GOOD
    p = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(p) in msg and expect in msg


def test_file_problems_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[link\nx = 1"))
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_parse_config_names_source():
    with pytest.raises(ConfigError, match="^inline: "):
        parse_config({"link": {"fiber_loss_db_per_km": -1}}, "inline")
