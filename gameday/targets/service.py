"""A team's own service: a system gameday does not own.

gameday never starts, stops or reconfigures it. The target only checks that its entry
point answers, sends the scenario's synthetic traffic there (the SLIs), and lets the
scenario's faults (Toxiproxy on its dependency path, ...) and runbooks act on it, within
the project's allowlist (``[safety]`` in ``gameday.toml``), checked before anything is
injected. Going down, and ``gameday recover`` after a crash, leave it running: only the
faults are rolled back.
"""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gameday.core import safety
from gameday.core.errors import GamedayError, ValidationError
from gameday.core.spec import read_yaml
from gameday.scenarios.scenario import Scenario
from gameday.slis.traffic import Traffic
from gameday.targets.team import prometheus_sli, team_pieces, team_urls_allowed

if TYPE_CHECKING:
    from collections.abc import Callable

    from gameday.core.events import Entry
    from gameday.slis.samples import SliSource

REACHABLE_TIMEOUT_S = 5.0
INVENTORY = "GAMEDAY_INVENTORY"  # read by the host faults and the runbooks
HOST_FAULTS = "gameday.activities.hosts"


class ServiceTarget:
    name = "service"

    def __init__(self, sc: Scenario, run_dir: Path):
        if sc.traffic_url is None:  # the scenario's validation requires it
            raise GamedayError("a service target needs traffic.url")
        self.sc, self.url = sc, sc.traffic_url

    @property
    def env(self) -> dict[str, str]:
        """The team's inventory, for host faults (in this process, and from ``gameday
        recover`` after a crash: the lease keeps it) and runbooks."""
        return {INVENTORY: str(self.sc.inventory.resolve())} if self.sc.inventory else {}

    @property
    def settings(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def check(sc: Scenario) -> None:
        """Its entry point, and the team's Prometheus and Alertmanager it reads, must be
        on the allowlist; the hosts its host faults name, in its inventory."""
        file = str(sc.path)
        safety.allowed("urls", sc.traffic_url or "", field="traffic.url", file=file)
        team_urls_allowed(sc)
        used = _hosts(sc.experiment)
        if used and sc.inventory is None:
            raise ValidationError("the experiment acts on hosts: the scenario needs the "
                                  "team's inventory", file=file, field="inventory")
        if sc.inventory is not None:
            from gameday.targets.inventory import load_inventory

            known = load_inventory(sc.inventory).hosts
            for where, host in used:
                if host not in known:
                    raise ValidationError(f"{host!r} is not a host of the inventory "
                                          f"{sc.inventory}", file=str(sc.experiment),
                                          field=where)

    @staticmethod
    def pieces(sc: Scenario, experiment: dict[str, Any]) -> list[tuple[str, bool, str]]:
        """The team's Prometheus (every query returns a series), its Alertmanager, each
        host the experiment acts on (Ansible reaches it) and each Toxiproxy proxy."""
        found = team_pieces(sc, experiment)
        used = sorted({host for _, host in _hosts(sc.experiment)})
        if used and sc.inventory is not None:
            from gameday.targets.inventory import reachable

            for host, (ok, said) in reachable(sc.inventory, used).items():
                found.append((f"Host {host}", ok, f"{sc.inventory}: {said}"))
        return found

    def up(self) -> dict[str, Any]:
        """Nothing is started (``check`` ran before: the entry point is allowed); it
        must answer."""
        parts = urlsplit(self.url)
        connection = (http.client.HTTPSConnection if parts.scheme == "https"
                      else http.client.HTTPConnection)
        conn = connection(parts.hostname or "", parts.port, timeout=REACHABLE_TIMEOUT_S)
        try:
            conn.request("GET", parts.path or "/")
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            raise GamedayError(f"the service's entry point {self.url} does not answer: "
                               f"{exc}") from None
        finally:
            conn.close()
        return {"entrypoint": self.url, "status": status}

    def sampler(self, samples_path: Path) -> SliSource:
        """Synthetic traffic to the entry point; with ``sli.source: prometheus`` that
        traffic is only load, and the SLIs are the team's queries."""
        sc = self.sc
        if sc.sli.get("source") != "prometheus":
            return Traffic(self.url, sc.traffic_rate, sc.traffic_timeout_s, samples_path)
        return prometheus_sli(sc, samples_path)

    def state(self) -> dict[str, Any]:
        return {}

    def labels(self) -> dict[str, str]:
        return {}

    def watch(self, run_dir: Path, record: Callable[[Entry], object]) -> None:
        return None  # what the service says about itself is in its own logs

    def down(self) -> None:
        return None  # a team's own service keeps running

    @staticmethod
    def release(run_dir: Path, name: str) -> None:
        return None  # after a crash too: only the faults are rolled back


def _hosts(path: Path) -> list[tuple[str, str]]:
    """(where in the experiment, host) for each host its host faults name; an
    experiment that does not read is left to the experiment's own validation."""
    try:
        experiment = read_yaml(path)
    except ValidationError:
        return []
    found = []
    for section in ("method", "rollbacks"):
        activities = experiment.get(section) if isinstance(experiment, dict) else None
        for index, activity in enumerate(activities if isinstance(activities, list) else []):
            provider = activity.get("provider") if isinstance(activity, dict) else None
            if isinstance(provider, dict) and provider.get("module") == HOST_FAULTS:
                hosts = (provider.get("arguments") or {}).get("hosts")
                for i, host in enumerate(hosts if isinstance(hosts, list) else []):
                    found.append((f"{section}[{index}].provider.arguments.hosts[{i}]",
                                  str(host)))
    return found

