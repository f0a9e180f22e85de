"""Configuration file (`$GPUPOOL_CONFIG`, else /etc/gpupool/config.toml) and fabric path lookup."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupool.errors import BadInput, BadRequest

DEFAULT_CONFIG = "/etc/gpupool/config.toml"


@dataclass(frozen=True)
class Config:
    path: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise BadInput(f"{self.path}: [{name}] must be a table")
        return value


def load_config(path: str | None = None) -> Config:
    """Load the TOML config; a missing default file is an empty config, a bad one an input error."""
    explicit = path or os.environ.get("GPUPOOL_CONFIG")
    candidate = explicit or DEFAULT_CONFIG
    try:
        with open(candidate, "rb") as handle:
            return Config(candidate, tomllib.load(handle))
    except FileNotFoundError:
        if explicit:
            raise BadInput(f"{candidate}: config file not found") from None
        return Config(None, {})
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{candidate}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise BadInput(f"{candidate}: cannot read config: {exc.strerror}") from None


def resolve_fabric_path(option: str | None, config: Config | None = None) -> str:
    """--fabric, else $GPUPOOL_FABRIC, else the config file's `fabric` key (docs/contract.md)."""
    if option:
        return option
    env = os.environ.get("GPUPOOL_FABRIC")
    if env:
        return env
    config = config if config is not None else load_config()
    value = config.data.get("fabric")
    if isinstance(value, str) and value:
        base = Path(config.path).parent if config.path else Path(".")
        return str(base / value) if not os.path.isabs(value) else value
    raise BadRequest("no fabric file: give --fabric, set GPUPOOL_FABRIC, or set `fabric` in the config file")
