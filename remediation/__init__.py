"""Remediation: fix packs, plans and previews, executors, verification, audit, post-mortems."""
