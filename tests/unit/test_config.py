"""config.json: defaults written when missing, and every kind of bad value stops with a named error."""

import json

import pytest

from ddtui.config import DEFAULTS, ConfigError, load_config, resolve_home


@pytest.fixture
def home(tmp_path):
    return resolve_home(tmp_path / "home")


def write(home, data):
    home.root.mkdir(parents=True, exist_ok=True)
    home.config_file.write_text(data if isinstance(data, str) else json.dumps(data))


def test_missing_file_is_written_with_defaults(home):
    cfg = load_config(home)
    assert home.config_file.exists()
    assert json.loads(home.config_file.read_text()) == DEFAULTS
    assert cfg.model_dir == home.root / "models"
    assert cfg.output_dir == home.root / "outputs"
    assert (home.root / "keys").stat().st_mode & 0o777 == 0o700


def test_partial_file_is_merged_over_defaults(home):
    write(home, {"llm": {"threads": 3}, "paths": {"model_dir": "/srv/models"}})
    cfg = load_config(home)
    assert cfg["llm"]["threads"] == 3
    assert cfg.threads("llm") == 3
    assert cfg["llm"]["idle_timeout"] == DEFAULTS["llm"]["idle_timeout"]
    assert str(cfg.model_dir) == "/srv/models"


def test_relative_paths_are_under_home(home):
    write(home, {"paths": {"output_dir": "pictures"}})
    assert load_config(home).output_dir == home.root / "pictures"


@pytest.mark.parametrize(
    "data, fragments",
    [
        ("{not json", ["not valid JSON", "line 1"]),
        ({"llm": {"threads": "four"}}, ["'llm.threads'", "an integer", "a string"]),
        ({"llm": {"thread": 4}}, ["unknown key 'llm.thread'", "threads"]),
        ({"colour": "blue"}, ["unknown key 'colour'"]),
        ({"workers": {"local_sd": 1}}, ["'workers.local_sd'", "true or false"]),
        ({"paths": []}, ["'paths'", "an object"]),
        ({"timeouts": {"chat": -1}}, ["'timeouts.chat'", "0 or more"]),
        ({"ui": {"image_protocol": "ascii"}}, ["'ui.image_protocol'", "kitty"]),
        ({"workers": {"remote": [{"name": "gpu1", "endpoint": "http://x"}]}}, ["workers.remote[0].endpoint", "tcp://"]),
        ({"workers": {"remote": [{"name": "gpu1", "endpoint": "tcp://h:1", "port": 2}]}}, ["workers.remote[0].port"]),
        ({"ui": {"keys": {"generate.submit": 5}}}, ["ui.keys.generate.submit"]),
        ([1, 2], ["must be an object"]),
    ],
)
def test_bad_config_names_file_key_and_expectation(home, data, fragments):
    write(home, data)
    with pytest.raises(ConfigError) as err:
        load_config(home)
    message = str(err.value)
    assert str(home.config_file) in message
    for fragment in fragments:
        assert fragment in message


def test_save_round_trips_and_validates(home):
    cfg = load_config(home)
    cfg.data["sd"]["preview_interval"] = 2
    cfg.save()
    assert load_config(home)["sd"]["preview_interval"] == 2
    cfg.data["sd"]["preview_interval"] = "often"
    with pytest.raises(ConfigError):
        cfg.save()
    assert load_config(home)["sd"]["preview_interval"] == 2  # the bad value never reached the file


def test_env_home(monkeypatch, tmp_path):
    monkeypatch.setenv("DDTUI_HOME", str(tmp_path / "elsewhere"))
    assert resolve_home().root == (tmp_path / "elsewhere").resolve()
