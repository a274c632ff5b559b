"""Shared plumbing under every stage: config, errors, files, devices, threads, safe loading."""
