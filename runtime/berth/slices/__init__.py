"""Slices: the cgroup groups containers share a host through (binding, priority, limits)."""
