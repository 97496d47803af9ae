"""Device profiles: shipped files load, and every kind of mistake names the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hwnas.errors import ConfigError
from hwnas.latency.device import DeviceProfile, list_device_profiles, load_device_profile

REPO_DEVICES = Path(__file__).resolve().parents[1] / "devices"
SHIPPED = sorted(p.stem for p in REPO_DEVICES.glob("*.yaml"))


def test_expected_profiles_are_shipped():
    assert {"cpu-1thread", "cpu-all", "cuda-b1", "cuda-b64", "edge-agent"} <= set(SHIPPED)
    assert set(SHIPPED) <= set(list_device_profiles())


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads(name):
    by_name = load_device_profile(name)
    by_path = load_device_profile(REPO_DEVICES / f"{name}.yaml")
    assert by_name == by_path
    assert by_name.name == name and by_name.slug == name
    assert by_name.repeats >= 1 and by_name.batch_size >= 1
    assert DeviceProfile.from_dict(by_name.to_dict()) == by_name  # round trip


def test_shipped_profiles_have_the_promised_settings():
    one = load_device_profile("cpu-1thread")
    assert (one.backend, one.threads, one.pin_cores, one.batch_size) == ("onnxruntime", 1, (0,), 1)
    assert load_device_profile("cpu-all").threads == 0
    assert load_device_profile("cuda-b64").batch_size == 64
    assert load_device_profile("cuda-b1").backend == "torch-cuda"
    edge = load_device_profile("edge-agent")
    assert (edge.backend, edge.url, edge.token_env) == ("remote", "http://127.0.0.1:8765", "HWNAS_AGENT_TOKEN")
    assert (edge.threads, edge.pin_cores) == (1, (0,))
    assert "token:" not in (REPO_DEVICES / "edge-agent.yaml").read_text()  # secrets never in the file


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {"name": "t", "backend": "onnxruntime", "repeats": 5}


@pytest.mark.parametrize("change, field, allowed", [
    ({"colour": "red"}, "colour", "allowed fields"),
    ({"backend": "tpu"}, "backend", "onnxruntime, torch-cuda, remote"),
    ({"repeats": -3}, "repeats", "1 to 10000"),
    ({"repeats": "many"}, "repeats", "an integer"),
    ({"threads": 1.5}, "threads", "an integer"),
    ({"precision": "int4"}, "precision", "fp32, fp16, bf16"),
    ({"pin_cores": "0"}, "pin_cores", "list of CPU ids"),
    ({"pin_cores": [0, 0]}, "pin_cores", "distinct"),
    ({"batch_size": 0}, "batch_size", "1 to 4096"),
    ({"backend": "remote"}, "url", "http://127.0.0.1:8765"),
    ({"backend": "remote", "url": "ftp://x"}, "url", "http://"),
    ({"url": "http://x:1"}, "url", "only applies to backend 'remote'"),
    ({"provider": "GPU"}, "provider", "ExecutionProvider"),
])
def test_bad_field_names_file_field_and_allowed_values(tmp_path, change, field, allowed):
    path = _write(tmp_path, {**BASE, **change})
    with pytest.raises(ConfigError) as info:
        load_device_profile(path)
    message = str(info.value)
    assert str(path) in message and repr(field) in message and allowed in message


def test_missing_backend_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="'backend' is required"):
        load_device_profile(_write(tmp_path, {"name": "x"}))
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_device_profile(bad)
    with pytest.raises(ConfigError, match="mapping"):
        load_device_profile(_write(tmp_path, ["a", "b"]))  # type: ignore[arg-type]


def test_unknown_name_lists_available_profiles():
    with pytest.raises(ConfigError) as info:
        load_device_profile("no-such-device")
    assert "cpu-1thread" in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        load_device_profile("missing/dir/x.yaml")


def test_bare_name_resolves_from_working_directory(tmp_path, monkeypatch):
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "my-board.yaml").write_text("backend: onnxruntime\nthreads: 2\n")
    monkeypatch.chdir(tmp_path)
    profile = load_device_profile("my-board")
    assert profile.name == "my-board" and profile.threads == 2  # name defaults to the file stem
    assert "my-board" in list_device_profiles()


def test_slug_token_and_replace(monkeypatch):
    profile = DeviceProfile(name="Jetson Orin / NX", backend="remote", url="http://10.0.0.2:8765",
                            token_env="MY_TOKEN", pin_cores=[1])
    assert profile.slug == "jetson-orin-nx"
    assert profile.pin_cores == (1,)
    monkeypatch.delenv("MY_TOKEN", raising=False)
    assert profile.token() is None
    monkeypatch.setenv("MY_TOKEN", "s3cret")
    assert profile.token() == "s3cret"  # read at use time
    assert "s3cret" not in str(profile.to_dict())
    assert profile.replace(repeats=7).repeats == 7
    with pytest.raises(ConfigError, match="'repeats'"):
        profile.replace(repeats=0)
    with pytest.raises(ConfigError, match="'warmup'"):
        DeviceProfile(name="x", backend="onnxruntime", warmup=-1)
