"""Telling people what happened: the event outbox, webhooks, email and SMS."""
