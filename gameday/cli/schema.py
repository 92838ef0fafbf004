"""``gameday schema``: the JSON Schema of scenario and runbook files, for editors.

The schemas are generated from the models the loaders validate with
(``gameday.scenarios.scenario.ScenarioSpec``, ``gameday.runbooks.runbook.RunbookSpec``),
so an editor checks a file by the same rules as ``gameday validate``, less what only the loader can
know (that the experiment file exists, that a linked runbook is there). Both are JSON
Schema draft 2020-12.

To use one with the YAML language server (VS Code's YAML extension, Neovim, Helix,
...), write it into the project once::

    gameday schema scenario > .gameday/scenario.schema.json
    gameday schema runbook > .gameday/runbook.schema.json

then either put a modeline at the top of each file, with the path relative to it::

    # yaml-language-server: $schema=../.gameday/scenario.schema.json

or map files to schemas in the editor's settings (VS Code ``settings.json``)::

    "yaml.schemas": {
        ".gameday/scenario.schema.json": "scenarios/*.yaml",
        ".gameday/runbook.schema.json": "runbooks/*.yml"
    }

The runbook schema covers a whole playbook: its first play must hold
``vars.gameday_runbook`` (``$defs/RunbookMetadata``: summary, alerts, auto,
destructive, parameters with type, required, pattern, choices, default, description
and label); the rest of the playbook is left to Ansible. An editor applies one schema
to a file, so a runbook that uses this one is not also checked against Ansible's
playbook schema there (ansible-lint still checks it).

pydantic is imported inside the command, so ``gameday --help`` stays fast.
"""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("kind", type=click.Choice(["scenario", "runbook"]))
def schema(kind: str) -> None:
    """Print the JSON Schema of KIND files (scenario or runbook) for YAML editors.

    \b
    gameday schema scenario > .gameday/scenario.schema.json
    # yaml-language-server: $schema=../.gameday/scenario.schema.json
    """
    if kind == "scenario":
        from gameday.scenarios.scenario import scenario_schema

        document = scenario_schema()
    else:
        from gameday.runbooks.runbook import runbook_schema

        document = runbook_schema()
    click.echo(json.dumps(document, indent=2))
