"""Deployments: named apps with immutable revisions, health gates, traffic switch and rollback."""
