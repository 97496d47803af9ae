"""Device profiles: one YAML file per measurement target, so a latency table says where it came from.

A profile fixes everything that changes a latency number (runtime backend, execution provider,
thread count, core pinning, batch size, precision, warm-up and repeat counts) so two tables are
comparable exactly when their profiles are. Profiles are validated by hand (no pydantic needed on
an edge board): an unknown field, a wrong type or a bad value raises :class:`ConfigError` naming the
file, the field and what is allowed. Secrets never live in the file: a remote profile names the
environment variable (``token_env``) holding the agent token, read only when a measurement starts.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from hwnas.errors import ConfigError

BACKENDS = ("onnxruntime", "torch-cuda", "remote")
PRECISIONS = ("fp32", "fp16", "bf16")
DEFAULT_PROVIDER = "CPUExecutionProvider"
DEFAULT_TOKEN_ENV = "HWNAS_AGENT_TOKEN"
MAX_REPEATS = 10_000
MAX_WARMUP = 10_000


@dataclass(frozen=True)
class DeviceProfile:
    """Where and how latency is measured. Build with :meth:`from_dict` or :func:`load_device_profile`."""

    name: str
    backend: str
    description: str = ""
    provider: str = DEFAULT_PROVIDER
    threads: int = 0  # intra-op threads; 0 = runtime default (all cores)
    pin_cores: tuple[int, ...] | None = None
    batch_size: int = 1
    precision: str = "fp32"
    warmup: int = 10
    repeats: int = 30
    url: str | None = None  # remote only
    token_env: str = DEFAULT_TOKEN_ENV  # remote only: env var holding the agent token
    timeout_s: float = 60.0
    cuda_graphs: bool = False  # torch-cuda only: replay a captured CUDA graph to cut launch overhead
    source: str = field(default="<dict>", compare=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name != "source":  # type-check and normalise (list -> tuple) even for direct construction
                object.__setattr__(self, f.name, _coerce(self.source, f.name, getattr(self, f.name)))
        _validate(self)

    @property
    def slug(self) -> str:
        """File-system-safe name used for output folders (``tables/<slug>/...``)."""
        slug = re.sub(r"[^a-z0-9._-]+", "-", self.name.lower()).strip("-.")
        return slug or "device"

    def token(self) -> str | None:
        """The agent token from ``$token_env``, read now (never stored in the profile file)."""
        value = os.environ.get(self.token_env, "").strip()
        return value or None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}
        out["pin_cores"] = list(self.pin_cores) if self.pin_cores is not None else None
        return out

    def replace(self, **changes: Any) -> "DeviceProfile":
        """A copy with some fields changed, validated like a loaded file (e.g. CLI ``--repeats``)."""
        data = self.to_dict()
        data.update(changes)
        return DeviceProfile.from_dict(data, source=self.source)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> "DeviceProfile":
        """Validate raw (YAML) data field by field; every problem names ``source`` and the field."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: a device profile must be a YAML mapping of fields, "
                              f"got {type(data).__name__}; see devices/cpu-1thread.yaml for an example")
        allowed = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigError(f"{source}: unknown field {unknown[0]!r}; allowed fields: {', '.join(allowed)}")
        for required in ("name", "backend"):
            if data.get(required) in (None, ""):
                raise ConfigError(f"{source}: field {required!r} is required"
                                  + (f" (one of {', '.join(BACKENDS)})" if required == "backend" else ""))
        values = dict(data)
        if "provider" not in values and values["backend"] == "torch-cuda":
            values["provider"] = "CUDAExecutionProvider"  # its ONNX path runs on the GPU
        return cls(**values, source=source)


def _check(source: str, name: str, ok: bool, allowed: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{source}: field {name!r} has bad value {value!r}; allowed: {allowed}")


def _int(source: str, name: str, value: Any) -> int:
    _check(source, name, isinstance(value, int) and not isinstance(value, bool), "an integer", value)
    return value


def _coerce(source: str, name: str, value: Any) -> Any:
    """Type-check one raw field and convert YAML shapes (lists) to the dataclass's types."""
    if name in ("name", "backend", "description", "provider", "precision", "token_env"):
        _check(source, name, isinstance(value, str), "a string", value)
    elif name == "url":
        _check(source, name, value is None or isinstance(value, str), "a string such as http://host:8765", value)
    elif name in ("threads", "batch_size", "warmup", "repeats"):
        _int(source, name, value)
    elif name == "timeout_s":
        _check(source, name, isinstance(value, (int, float)) and not isinstance(value, bool), "a number", value)
        value = float(value)
    elif name == "cuda_graphs":
        _check(source, name, isinstance(value, bool), "true or false", value)
    elif name == "pin_cores":
        if value is not None:
            _check(source, name, isinstance(value, (list, tuple)) and all(
                isinstance(c, int) and not isinstance(c, bool) for c in value),
                "null or a list of CPU ids such as [0] or [0, 1]", value)
            value = tuple(value)
    return value


# (field, predicate, allowed-values text): value rules checked after types are known.
_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("name", lambda v: bool(v.strip()), "a non-empty name"),
    ("backend", lambda v: v in BACKENDS, ", ".join(BACKENDS)),
    ("provider", lambda v: v.endswith("ExecutionProvider"),
     "an ONNX Runtime execution provider name such as CPUExecutionProvider or CUDAExecutionProvider"),
    ("threads", lambda v: 0 <= v <= 1024, "0 (runtime default, all cores) or a positive thread count"),
    ("pin_cores", lambda v: v is None or (len(v) > 0 and all(c >= 0 for c in v) and len(set(v)) == len(v)),
     "null or a non-empty list of distinct CPU ids >= 0"),
    ("batch_size", lambda v: 1 <= v <= 4096, "an integer from 1 to 4096"),
    ("precision", lambda v: v in PRECISIONS, ", ".join(PRECISIONS)),
    ("warmup", lambda v: 0 <= v <= MAX_WARMUP, f"an integer from 0 to {MAX_WARMUP}"),
    ("repeats", lambda v: 1 <= v <= MAX_REPEATS, f"an integer from 1 to {MAX_REPEATS}"),
    ("timeout_s", lambda v: v > 0, "a positive number of seconds"),
    ("token_env", lambda v: re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) is not None,
     "an environment variable name such as HWNAS_AGENT_TOKEN"),
]


def _validate(profile: DeviceProfile) -> None:
    src = profile.source
    for name, ok, allowed in _RULES:
        _check(src, name, ok(getattr(profile, name)), allowed, getattr(profile, name))
    if profile.backend == "remote":
        if not profile.url:
            raise ConfigError(f"{src}: field 'url' is required for backend 'remote'; "
                              "set it to the agent address, e.g. url: http://127.0.0.1:8765")
        _check(src, "url", re.match(r"https?://[^/\s]+", profile.url) is not None,
               "an http:// or https:// address such as http://127.0.0.1:8765", profile.url)
    elif profile.url is not None:
        raise ConfigError(f"{src}: field 'url' only applies to backend 'remote' (this profile's backend is "
                          f"{profile.backend!r}); remove it or set backend: remote")
    if profile.cuda_graphs and profile.backend != "torch-cuda":
        raise ConfigError(f"{src}: field 'cuda_graphs' only applies to backend 'torch-cuda'; remove it")


def device_dirs() -> list[Path]:
    """Folders searched for bare profile names: ``./devices`` first (user overrides), then the repo's."""
    repo_devices = Path(__file__).resolve().parents[2] / "devices"
    dirs = [Path.cwd() / "devices", repo_devices]
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def list_device_profiles() -> list[str]:
    """Names of the profiles :func:`load_device_profile` can resolve without a path."""
    return sorted({p.stem for d in device_dirs() for p in d.glob("*.yaml")})


def load_device_profile(name_or_path: str | Path | DeviceProfile) -> DeviceProfile:
    """Load a profile from a ``.yaml`` path or a bare name resolved to ``devices/<name>.yaml``."""
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    text = str(name_or_path)
    looks_like_path = text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f"device profile file {text} not found; check the path or use a name from: "
                              f"{', '.join(list_device_profiles()) or '(none found)'}")
    else:
        candidates = [d / f"{text}.yaml" for d in device_dirs()]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise ConfigError(f"unknown device profile {text!r}; available: "
                              f"{', '.join(list_device_profiles()) or '(none)'}; or pass a path to a .yaml file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read device profile ({exc}); fix the YAML syntax") from None
    if isinstance(data, dict) and "name" not in data:
        data = {"name": path.stem, **data}
    return DeviceProfile.from_dict(data, source=str(path))
