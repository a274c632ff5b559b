"""The workflow's layout: run names, paths, what each job reads, asks a node for, and writes."""
