"""``gameday serve``: Alertmanager webhooks, one-click runbook pages, incident views.

``app`` builds the Starlette app (``create_app``) and its route table; the views are
module-level functions by concept: ``api`` (JSON, the webhook), ``signin``,
``incidents`` (list, incident page, review) and ``runbooks`` (one-click page, runs
and their output). ``context`` is what every view shares (``app.state``, who is
asking, body limits, page rendering), ``exceptions`` answers every failure once, and
``dispatch`` turns notifications into incidents and runbook runs.

Layering: this package uses the lower modules (store, incident, events, policy,
routing, runs, runbook, alerts, auth, render, errors) and never the game-day
orchestration (game, response, targets, detection, control).
"""
