"""What a run's child of the zygote does to Ansible before it runs the playbook: the
process-wide state the zygote's imports and warm-up left behind, put back as a fresh
``ansible-playbook`` would find it (``zygote`` forks the children)."""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any


def die_with(zygote: int) -> None:
    """Linux: the child is killed if the zygote dies (it would otherwise run on,
    unsupervised). Elsewhere the zygote's lifeline still ends its runs."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != zygote:  # it died before that took effect
        os._exit(250)


def config_messages() -> dict[str, Any]:
    """What Ansible's configuration had to say when it was read (warnings,
    deprecations): the first playbook run reports and forgets them."""
    from ansible.constants import config  # type: ignore[import-untyped]

    return {name: copy.copy(getattr(config, name))
            for name in ("_errors", "WARNINGS", "DEPRECATED") if hasattr(config, name)}


def reset_ansible(messages: dict[str, Any], awx_display: list[Any]) -> None:
    """Undo what the zygote's imports and warm-up left in Ansible's process-wide state, so
    the child starts as ``ansible-playbook`` would: the parsed CLI arguments (a
    singleton: left alone, the child would run with the warm-up's), vault secrets
    (refuses a second initialisation), warnings already shown, the task ids' random
    prefix, and ansible-runner's display callback context (the run's artifact
    directory is read when it is created), what the configuration had to say. Each
    step is skipped where this Ansible has no such thing. Nothing here depends on the
    run: a spare child does it before its run is known (``isolated_cache`` does the
    part that needs the run's environment)."""
    from ansible import context  # type: ignore[import-untyped]
    from ansible.constants import config
    from ansible.utils.context_objects import (  # type: ignore[import-untyped]
        CLIArgs,
        GlobalCLIArgs,
    )
    from ansible.utils.display import Display  # type: ignore[import-untyped]

    context.CLIARGS = CLIArgs({})
    GlobalCLIArgs._Singleton__instance = None
    for name, value in messages.items():
        setattr(config, name, copy.copy(value))
    with contextlib.suppress(ImportError):
        from ansible.parsing.vault import VaultSecretsContext  # type: ignore[import-untyped]

        VaultSecretsContext._current = None
    display = Display()
    for name in ("_warns", "_deprecations", "_errors"):
        seen = getattr(display, name, None)
        if seen is not None:
            seen.clear()
    with contextlib.suppress(ImportError):
        import ansible.utils.vars as ansible_vars  # type: ignore[import-untyped]

        ansible_vars.cur_id = 0
        ansible_vars.random_int = f"{secrets.randbelow(2 ** 32):08x}"
    for module in awx_display:
        context_ = module.event_context
        context_._global_ctx = {}
        context_._local = threading.local()
    # The plugin loader is initialised once per process; the zygote did it.
    warnings.filterwarnings("ignore", message="AnsibleCollectionFinder has already been")


def awx_display_modules() -> Iterator[Any]:
    for module in list(sys.modules.values()):
        callback = getattr(module, "CallbackModule", None)
        if (getattr(callback, "CALLBACK_NAME", None) == "awx_display"
                and hasattr(module, "event_context") and hasattr(module, "IsolatedFileWrite")):
            yield module


def isolated_cache(awx_display: list[Any]) -> None:
    """Once the run's environment is in place: ansible-runner's display callback writes
    its events to files when the run says so (``AWX_ISOLATED_DATA_DIR``)."""
    if os.environ.get("AWX_ISOLATED_DATA_DIR"):
        for module in awx_display:
            module.event_context.cache = module.IsolatedFileWrite()


def prepare() -> dict[str, Any]:
    """In the zygote, once warm: what every run's ``ansible-playbook`` builds alike
    before its first task (its argument parser; the inventory plugins, loaded and
    configured by the same settings), built once so that no run spends its first
    milliseconds on them. Each child uses them once (``use_prepared``)."""
    from ansible.cli.playbook import PlaybookCLI  # type: ignore[import-untyped]
    from ansible.inventory.manager import InventoryManager  # type: ignore[import-untyped]

    cli = PlaybookCLI(["ansible-playbook"])
    cli.init_parser()
    plugins = InventoryManager._fetch_inventory_plugins(InventoryManager.__new__(
        InventoryManager))
    return {"parser": cli.parser, "inventory_plugins": plugins}


def use_prepared(prepared: dict[str, Any]) -> None:
    """In a run's child: the first argument parser and the first inventory plugins the
    run asks for are the zygote's (``prepare``); any after those are built as usual."""
    from ansible.cli.playbook import PlaybookCLI
    from ansible.inventory.manager import InventoryManager

    if not prepared:
        return
    init_parser = PlaybookCLI.init_parser
    fetch = InventoryManager._fetch_inventory_plugins
    left = dict(prepared)

    def prepared_parser(self: Any) -> None:
        parser = left.pop("parser", None)
        if parser is None:
            init_parser(self)
        else:
            self.parser = parser

    def prepared_plugins(self: Any) -> list[Any]:
        plugins: list[Any] | None = left.pop("inventory_plugins", None)
        return fetch(self) if plugins is None else plugins

    PlaybookCLI.init_parser = prepared_parser
    InventoryManager._fetch_inventory_plugins = prepared_plugins
