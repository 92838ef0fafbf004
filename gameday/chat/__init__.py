"""Incidents where responders already are: a room per incident in the team's chat, its
people invited and paged there, the timeline posted as it happens, and every move of
``gameday.incidents.moves`` taken as a command from the room (``commands``), by the
gameday person the chat account is, on the record at the message's own time.

``config`` reads ``[chat]``; ``base`` is the one interface a chat implements
(``matrix``: Matrix through matrix-nio; ``slack``: Slack through its SDK); ``relay``
runs inside ``gameday serve`` and connects the store's timelines to the rooms.
"""
