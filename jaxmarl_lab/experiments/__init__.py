"""Experiments built on jaxmarl-lab: sweeps that answer one question each, with tables and plots."""
