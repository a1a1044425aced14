"""Tests against a real one-node Slurm on localhost (skipped, with the reason, where it cannot run)."""

from tests.slurm_cluster import local_slurm  # noqa: F401  (the session fixture, for every test in this package)
