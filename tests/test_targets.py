import json

import pytest

from edge_opt.core.errors import ConfigError
from edge_opt.run.suite import load_suite
from edge_opt.targets import available_profiles, load_profile, save_profile


def test_the_shipped_profiles_load():
    assert available_profiles() == ["cpu", "edgetpu", "gpu", "mobile", "mobile-fair"]
    for name in available_profiles():
        profile = load_profile(name)
        assert profile.name == name
        assert profile.pipelines and profile.runtimes and profile.threads


def test_profile_round_trips(tmp_path):
    profile = load_profile("edgetpu")
    path = save_profile(profile, tmp_path / "edgetpu.yaml")
    again = load_profile(path)
    assert again == profile
    assert again.pipelines[0][0].config == {"precision": "int8", "io": "int8"}


def _write(tmp_path, text, name="custom.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_field_names_file_field_and_allowed(tmp_path):
    text = load_profile("cpu").model_dump_json()  # JSON is YAML
    path = _write(tmp_path, text.replace('"threads"', '"thread_count"', 1))
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    msg = str(err.value)
    assert str(path) in msg and "thread_count" in msg and "allowed:" in msg and "threads" in msg


def test_bad_value_names_field(tmp_path):
    path = _write(tmp_path, load_profile("cpu").model_dump_json(by_alias=True).replace('"fp32"', '"fp8"', 1))
    with pytest.raises(ConfigError, match=r"field 'precision'.*'fp32', 'fp16' or 'int8'"):
        load_profile(path)


def test_bad_runtime_is_listed(tmp_path):
    path = _write(tmp_path, load_profile("cpu").model_dump_json(by_alias=True).replace('"litert"', '"tensorrt"'))
    with pytest.raises(ConfigError, match=r"field 'runtimes\.3\.runtime'.*unknown runtime 'tensorrt'.*litert-compiled"):
        load_profile(path)


def test_profiles_name_every_registered_runtime_and_plugins(tmp_path):
    """litert-compiled and module:Class plug-ins are runtimes a profile can name (they used to be refused)."""
    cpu = load_profile("cpu").to_dict()
    cpu["runtimes"] = [{"runtime": "litert-compiled"}, {"runtime": "tests.plugins.crashy:CrashBackend"}]
    profile = load_profile(_write(tmp_path, json.dumps(cpu)))
    assert [rs.runtime for rs in profile.runtimes] == ["litert-compiled", "tests.plugins.crashy:CrashBackend"]
    cpu["runtimes"] = [{"runtime": "os:system"}]
    with pytest.raises(ConfigError, match=r"runtimes\.0\.runtime.*is a plug-in, and edge-opt imports no module"):
        load_profile(_write(tmp_path, json.dumps(cpu)))
    cpu["runtimes"] = [{"runtime": "tests.plugins.crashy:NoSuchClass"}]
    with pytest.raises(ConfigError, match=r"runtimes\.0\.runtime.*cannot be imported"):
        load_profile(_write(tmp_path, json.dumps(cpu)))


def test_a_precision_is_only_asked_of_a_runtime_that_offers_it(tmp_path):
    cpu = load_profile("cpu").to_dict()
    cpu["runtimes"] = [{"runtime": "litert", "precision": "bf16"}]
    with pytest.raises(ConfigError, match=r"runtimes\.0.*cannot be asked for precision bf16"):
        load_profile(_write(tmp_path, json.dumps(cpu)))


def test_malformed_yaml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"malformed YAML \(line 3"):
        load_profile(_write(tmp_path, "name: cpu\nthreads: [1, 2\n"))


def test_unknown_profile_lists_known():
    with pytest.raises(ConfigError, match="known: cpu, edgetpu, gpu, mobile"):
        load_profile("tpu-v9")


def test_suites_validate():
    assert load_suite().name == "default"
    quick = load_suite("quick")
    assert quick.tasks[0].train_rows == 2000


def test_suite_bad_field(tmp_path):
    path = _write(tmp_path, "name: x\ntasks: [{name: a, dataset: imagenet}]\ntargets: [cpu]\n")
    with pytest.raises(ConfigError, match=r"field 'tasks\.0\.dataset'.*'adult' or 'digits'"):
        load_suite(path)
