"""The shop's topology, read from ``shop.yaml`` into frozen dataclasses."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from gameday.core.errors import NotFound


@dataclass(frozen=True)
class Release:
    version: str
    error_ratio: float = 0.0
    note: str = ""


@dataclass(frozen=True)
class Call:
    service: str
    path: str
    flag: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    replicas: int
    releases: tuple[Release, ...]
    calls: tuple[Call, ...] = ()
    flags: dict[str, bool] = field(default_factory=dict)

    def release(self, version: str) -> Release:
        for release in self.releases:
            if release.version == version:
                return release
        known = ", ".join(r.version for r in self.releases)
        raise NotFound(f"{self.name} has no release {version!r} (known: {known})")


@dataclass(frozen=True)
class Shop:
    entrypoint: str
    path: str
    services: dict[str, ServiceSpec]

    def service(self, name: str) -> ServiceSpec:
        if name not in self.services:
            raise NotFound(f"no sandbox service {name!r} (known: {', '.join(self.services)})")
        return self.services[name]


SHOP_FILE = Path(__file__).with_name("shop.yaml")
SHOP_COPY = "shop.json"  # the shop as a supervisor runs it, in its state directory


@cache
def load_shop(path: Path = SHOP_FILE) -> Shop:
    """The shop in ``path``: ``shop.yaml``, or the JSON copy a supervisor writes for its
    replicas (``as_json``), which then start without importing a YAML parser."""
    if path.suffix == ".json":
        return shop_from(json.loads(path.read_text()))
    import yaml

    return shop_from(yaml.safe_load(path.read_text()))


def as_json(shop: Shop) -> dict[str, Any]:
    """The shop as ``load_shop`` reads it back from JSON."""
    return asdict(shop)


def shop_from(raw: dict[str, Any]) -> Shop:
    services = {
        name: ServiceSpec(
            name=name,
            replicas=spec["replicas"],
            releases=tuple(Release(**r) for r in spec["releases"]),
            calls=tuple(Call(**c) for c in spec.get("calls", [])),
            flags=dict(spec.get("flags", {})),
        )
        for name, spec in raw["services"].items()
    }
    return Shop(entrypoint=raw["entrypoint"], path=raw["path"], services=services)
