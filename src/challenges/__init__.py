"""Challenges: the agreement between two parties, its state machines, stakes, attestations and proof."""
