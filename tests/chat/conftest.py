"""Incident rooms in chat: a real Synapse on loopback and real Matrix clients."""
