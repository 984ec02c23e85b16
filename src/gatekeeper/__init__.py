"""Gatekeeper v2: wallet ownership challenges and proof of funds."""
