"""Chaos Toolkit experiments: load, validate and run them in-process with chaoslib.

``run`` runs any experiment with rollbacks under the ``always`` strategy and inside
chaoslib's signal handling, so SIGINT or SIGTERM ends the run ``interrupted`` with
its rollbacks played (in a game day, all of them: a signal during the rollbacks is
remembered until they are done, ``control``). A game day passes a ``hooks`` object:
the gameday control (``gameday.game.control``) forwards chaoslib's hooks to it while
the experiment runs.
chaoslib is imported lazily: ``gameday --help`` does not pay for it.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Any

from gameday.activities import faults
from gameday.core import safety
from gameday.core.errors import ValidationError
from gameday.game import interrupts

CONTROL = {"gameday": {"provider": {"type": "python", "module": "gameday.game.control"}}}


def load_experiment(path: str | Path, *, game_day: bool = True) -> dict[str, Any]:
    """Parse and validate an experiment; errors name the file and what is wrong. A game
    day's (``game_day``: a scenario's, not one run by hand with ``gameday experiment
    run``) stays within the project's allowlist (``bounded``)."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import parse_experiment_from_file

    path = Path(path)
    if not path.exists():
        raise ValidationError("no such file", file=str(path))
    try:
        experiment = parse_experiment_from_file(str(path))
    except ChaosException as exc:
        raise ValidationError(str(exc), file=str(path)) from None
    except Exception as exc:  # the YAML/JSON parsers' own errors
        raise ValidationError(f"not a valid experiment file: {exc}", file=str(path)) from None
    if not isinstance(experiment, dict):
        raise ValidationError("an experiment must be a mapping", file=str(path))
    _shaped(experiment, str(path))
    _quiet(None)
    try:
        ensure_experiment_is_valid(experiment)
    except ChaosException as exc:
        raise ValidationError(str(exc).strip(), file=str(path),
                              field=_field_of(str(exc))) from None
    except Exception as exc:  # chaoslib raises plain errors on some malformed shapes
        raise ValidationError(f"invalid experiment: {exc!r}", file=str(path)) from None
    for undone in faults.not_undone(experiment):
        raise ValidationError(undone.reason, file=str(path), field=undone.field)
    for where, kind, value in faults.reaches(experiment):
        for i, one in enumerate(value) if isinstance(value, list) else ((None, value),):
            safety.allowed(kind, str(one), file=str(path),
                           field=where if i is None else f"{where}[{i}]")
    if game_day:
        bounded(experiment, str(path))
    return experiment


def _shaped(experiment: dict[str, Any], file: str) -> None:
    """The lists and mappings chaoslib walks without checking their kind first (a
    ``method: kill`` would be a TypeError there, naming nothing)."""
    for key in ("method", "rollbacks"):
        listed = experiment.get(key)
        if listed is not None and not isinstance(listed, list):
            raise ValidationError("must be a list of activities", file=file, field=key)
        for i, activity in enumerate(listed or []):
            if not isinstance(activity, dict):
                raise ValidationError("must be an activity (a mapping)", file=file,
                                      field=f"{key}[{i}]")
    hypothesis = experiment.get("steady-state-hypothesis")
    if hypothesis is None:
        return
    if not isinstance(hypothesis, dict):
        raise ValidationError("must be a mapping", file=file, field="steady-state-hypothesis")
    probes = hypothesis.get("probes")
    if probes is not None and not (isinstance(probes, list)
                                   and all(isinstance(p, dict) for p in probes)):
        raise ValidationError("must be a list of probes (mappings)", file=file,
                              field="steady-state-hypothesis.probes")


UNBOUNDED = ("a process provider runs any command on this host, which the project's "
             "allowlist ([safety] in gameday.toml) cannot bound")
UNDECLARED = ("is declared by nothing: gameday knows what an activity touches and what "
              "undoes it only from its declaration")
ELSEWHERE = ("write the fault as a Python function declared with @fault, or declare a third "
             "party's with faults.declare (docs/extending.md), or run the experiment by hand "
             "with `gameday experiment run`")


def bounded(experiment: dict[str, Any], file: str,
            activities: list[tuple[str, Any]] | None = None) -> None:
    """A game day's activities stay within what gameday can bound: a ``python`` provider
    must name a declared activity (``activities.faults``: what it touches is then checked
    against ``[safety]``, ``load_experiment``), an ``http`` provider's URL (its
    configuration substituted) must be among ``[safety] urls``, and a ``process``
    provider, which could run anything, is refused; so are ``controls`` (any Python,
    around every activity). A probe's tolerance that is itself a probe is checked the
    same way. ``activities``: (where, activity) to check instead of the experiment's."""
    if activities is None:
        if experiment.get("controls"):
            raise ValidationError(f"controls run any Python around the experiment: "
                                  f"{ELSEWHERE}", file=file, field="controls")
        activities = faults.activities(experiment)
    configuration: dict[str, Any] | None = None
    while activities:
        where, activity = activities.pop(0)
        if not isinstance(activity, dict):
            continue
        if activity.get("controls"):
            raise ValidationError(f"controls run any Python around the activity: "
                                  f"{ELSEWHERE}", file=file, field=f"{where}.controls")
        tolerance = activity.get("tolerance")
        if isinstance(tolerance, dict) and tolerance.get("type") == "probe":
            activities.append((f"{where}.tolerance", tolerance))
        provider = activity.get("provider")
        kind = provider.get("type") if isinstance(provider, dict) else None
        if not isinstance(provider, dict) or kind is None:
            continue  # a ``ref`` to an activity checked where it is written
        if kind == "process":
            raise ValidationError(f"{UNBOUNDED}: {ELSEWHERE}", file=file,
                                  field=f"{where}.provider")
        if kind == "python":
            key = f"{provider.get('module')}:{provider.get('func')}"
            if faults.lookup(key) is None:
                raise ValidationError(f"{key.replace(':', '.')} {UNDECLARED}: {ELSEWHERE}",
                                      file=file, field=f"{where}.provider")
        elif kind == "http":
            if configuration is None:
                configuration = _configuration(experiment)
            _within_urls(str(provider.get("url", "")), configuration, file,
                         f"{where}.provider.url")


def _configuration(experiment: dict[str, Any]) -> dict[str, Any]:
    from chaoslib.configuration import load_configuration

    loaded: dict[str, Any] = load_configuration(experiment.get("configuration") or {})
    return loaded


def _within_urls(url: str, configuration: dict[str, Any], file: str, field: str) -> None:
    """An http provider's URL, its configuration substituted, within ``[safety] urls``; a
    URL that still names something unknown until the run (a secret) is refused."""
    from chaoslib import substitute

    url = str(substitute(url, configuration, {}))
    if "${" in url:
        raise ValidationError(f"{url[:120]!r} is known only when the game day runs (a secret "
                              "or an unset configuration value): the allowlist cannot check "
                              "it", file=file, field=field)
    safety.allowed("urls", url, file=file, field=field)


def with_drill_faults(experiment: dict[str, Any], drill: Any, file: str) -> dict[str, Any]:
    """The experiment with the rollbacks of the drill's second faults (``drill.injects[].
    fault``) after its own: they run with them on success, failure, a signal, and from
    ``gameday recover`` after a crash. Each fault and rollback is checked as chaoslib
    checks an experiment's activities."""
    from chaoslib.activity import ensure_activity_is_valid
    from chaoslib.exceptions import ChaosException

    second = [(i, inject) for i, inject in enumerate(drill.injects) if inject.fault]
    for i, inject in second:
        for key in ("fault", "rollback"):
            try:
                ensure_activity_is_valid(getattr(inject, key))
            except ChaosException as exc:
                raise ValidationError(str(exc).strip(), file=file,
                                      field=f"drill.injects.{i}.{key}") from None
            except Exception as exc:  # chaoslib raises plain errors on some shapes
                raise ValidationError(f"not a valid Chaos Toolkit action: {exc!r}"[:300],
                                      file=file, field=f"drill.injects.{i}.{key}") from None
    bounded(experiment, file, [(f"drill.injects.{i}.{key}", getattr(inject, key))
                               for i, inject in second for key in ("fault", "rollback")])
    for i, inject in second:  # each second fault's own rollback undoes it
        undone = faults.undone_by(f"drill.injects.{i}.fault", inject.fault,
                                  [(f"drill.injects.{i}.rollback", inject.rollback)])
        if undone:
            raise ValidationError(undone.reason, file=file, field=undone.field)
    if not second:
        return experiment
    return {**experiment, "rollbacks": [*(experiment.get("rollbacks") or []),
                                        *(dict(inject.rollback) for _, inject in second)]}


def run_action(run_dir: Path, action: dict[str, Any]) -> str:
    """Run one Chaos Toolkit action with the game day's experiment configuration and
    secrets (``experiment.json`` in ``run_dir``): ``succeeded`` or why not."""
    return execute(json.loads((run_dir / "experiment.json").read_text()), action)


def execute(experiment: dict[str, Any], activity: dict[str, Any]) -> str:
    """Run one activity (an action, a rollback) of ``experiment`` with its configuration
    and secrets: ``succeeded``, or why not (an activity that cannot run is reported, not
    raised: the drill, the recovery goes on)."""
    from chaoslib.activity import execute_activity
    from chaoslib.configuration import load_configuration
    from chaoslib.secret import load_secrets

    try:
        configuration = load_configuration(experiment.get("configuration") or {})
        secrets = load_secrets(experiment.get("secrets") or {}, configuration)
        run = execute_activity(experiment, activity, configuration, secrets, dry=None)
    except Exception as exc:
        return f"failed: {str(exc)[:200]}"
    return str(run.get("status")) if run else "failed"


def steady_state_met(experiment: dict[str, Any]) -> bool:
    """Whether the experiment's steady-state hypothesis holds now (a preflight: nothing
    is injected); an experiment without one has nothing to hold."""
    if not experiment.get("steady-state-hypothesis"):
        return True
    from chaoslib.configuration import load_configuration
    from chaoslib.hypothesis import run_steady_state_hypothesis
    from chaoslib.run import EventHandlerRegistry
    from chaoslib.secret import load_secrets

    configuration = load_configuration(experiment.get("configuration") or {})
    secrets = load_secrets(experiment.get("secrets") or {}, configuration)
    state = run_steady_state_hypothesis(experiment, configuration, secrets, dry=None,
                                        event_registry=EventHandlerRegistry())
    return bool(state and state.get("steady_state_met"))


def _field_of(message: str) -> str | None:
    for key in ("title", "description", "method", "steady-state-hypothesis", "rollbacks",
                "provider", "tolerance", "controls"):
        if key in message:
            return key
    return None


def _quiet(log_path: Path | None) -> None:
    """chaoslib logs to the 'chaostoolkit' logger: to the run directory, not the terminal."""
    logger = logging.getLogger("chaostoolkit")
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if log_path:
        handler = logging.FileHandler(log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    else:
        logger.addHandler(logging.NullHandler())


def run(experiment: dict[str, Any], run_dir: Path, hooks: Any | None = None) -> dict[str, Any]:
    """Run ``experiment``; write ``journal.json`` and ``chaostoolkit.log`` in ``run_dir``."""
    from chaoslib.control import load_global_controls
    from chaoslib.experiment import run_experiment

    from gameday.game import control

    _quiet(run_dir / "chaostoolkit.log")
    settings: dict[str, Any] = {"runtime": {"rollbacks": {"strategy": "always"}}}
    if hooks is not None:
        settings["controls"] = json.loads(json.dumps(CONTROL))
        load_global_controls(settings)
        control.install(hooks, shield=interrupts.shielded)
    # A background process started by a non-interactive shell ignores SIGINT; make
    # Ctrl-C (and kill -INT) interrupt the run so rollbacks follow.
    previous = signal.getsignal(signal.SIGINT)
    if not interrupts.installed():  # a game day's handlers stay; otherwise Ctrl-C works
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        journal: dict[str, Any] = run_experiment(experiment, settings=settings)
    finally:
        signal.signal(signal.SIGINT, previous)
        control.uninstall()
    if hooks is not None and interrupts.received is not None:
        journal["status"] = "interrupted"  # one the rollbacks' shield only remembered
    (run_dir / "journal.json").write_text(json.dumps(journal, indent=2, default=str))
    return journal
